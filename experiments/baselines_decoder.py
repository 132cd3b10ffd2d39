"""The field's decoder converter beside spikemfm's on the same real weights: spikingjelly 2.0's Qwen2 recipe
against spikemfm's QANN / exact SNN, SmolLM2-135M on held-out standard-library code.

Protocol (the decoder issue's splits): calibration on the calibration split (``--calib-windows`` windows of
``--window`` tokens) for both converters; perplexity on the first ``--eval-windows`` windows of the test split
(read once per row); HumanEval pass@1 greedy on the first ``--problems`` problems (sandboxed, hidden tests);
greedy agreement with FP32 and wall time per token on ``--gen-tokens`` tokens after a ``--prompt-tokens``-token
test prompt. spikingjelly: ``Qwen2SNNConfig(time_steps=T, calibration_levels=min(16, T))`` (its default is 16
levels at T = 32) via :mod:`spikemfm.baselines.spikingjelly_qwen2`. spikemfm: SmoothQuant α = 0.5 (chosen on
validation in results/decoder_ppl), QANN at ``--bits``; its graded SNN's logits equal the QANN's once each pass
settles (checked on a ``--check-tokens``-token test window: steps per pass measured there), so the SNN rows carry
the QANN's perplexity and HumanEval; the binary SNN (one unit spike per step) is run at ``--binary-bits`` to
measure the steps it needs. Energy per token: spikingjelly's own estimator on its model (Horowitz fp32 MAC/AC
constants, its definitions) and spikemfm's profiles on spikemfm's SNN (``standard_formula`` uses the same MAC/AC
constants). Writes results/baselines_decoder/{json,csv,md,png}.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import spikemfm
from spikemfm.baselines.spikingjelly_qwen2 import (SJConfig, SpikingjellyLM, llama_to_qwen2, sj_convert, sj_logits,
                                                   sj_token_energy, structure)
from spikemfm.core.io import output_set, save_figure, save_table
from spikemfm.core.provenance import add_results_args, results_run
from spikemfm.data.code import code_windows, stdlib_files
from spikemfm.energy import load_profile
from spikemfm.ir.decoder import KVCache
from spikemfm.lm import generate
from spikemfm.lm.build import SMOOTH
from spikemfm.lm.energy import per_token, token_reports
from spikemfm.lm.humaneval import load_problems, solve
from spikemfm.lm.perplexity import nll, perplexity
from spikemfm.snn.decode import chunked_pass

PROFILES = ("standard_formula", "horowitz45", "loihi2")


def timed(model, prompt: torch.Tensor, n: int) -> tuple[list[int], float]:
    """(greedy tokens, median ms per decoded token: the intervals between tokens after the first)."""
    stamps: list[float] = []
    gen = generate(model, prompt, n, on_token=lambda _: stamps.append(time.perf_counter()))
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return gen.new_tokens[0].tolist(), 1e3 * statistics.median(gaps) if gaps else float("nan")


def humaneval(model, label: str, tok, problems, max_new: int) -> int:
    attempts = solve({label: model}, tok, problems, max_new, progress=lambda m: print("   ", m, flush=True))
    return sum(a.passed for a in attempts)


def common(model, label: str, tok, data: dict, args, fp_tokens: list[int] | None) -> dict:
    """Perplexity-free columns every generating row has: HumanEval, agreement with FP32, ms per token."""
    tokens, ms = timed(model, data["prompt"], args.gen_tokens)
    agree = 1.0 if fp_tokens is None else sum(a == b for a, b in zip(tokens, fp_tokens)) / len(fp_tokens)
    return {"humaneval_passed": humaneval(model, label, tok, data["problems"], args.max_new_tokens),
            "problems": len(data["problems"]), "agree_fp32": round(agree, 3), "ms_per_token": round(ms, 1),
            "_tokens": tokens}


def sj_rows(qwen2, tok, data: dict, args, fp_tokens) -> list[dict]:
    rows = []
    for t in args.timesteps:
        cfg = SJConfig(t)
        print(f"spikingjelly T={t}, {cfg.calibration_levels} levels", flush=True)
        snn = sj_convert(qwen2, [w[None] for w in data["calib"]], cfg)
        total = count = 0
        for w in data["test"]:
            s, n = nll(sj_logits(snn, w[None]), w[None])
            total, count = total + s, count + n
        row = {"converter": "spikingjelly", "path": "TD/SNN hybrid", "bits_or_levels": cfg.calibration_levels,
               "time_steps": t, "perplexity": round(float(torch.tensor(total / count).exp()), 3),
               **common(SpikingjellyLM(snn), f"sj-T{t}", tok, data, args, fp_tokens),
               **{k: round(v, 1) for k, v in sj_token_energy(snn, data["prompt"]).items()},
               "float_in_spiking_path": "RMSNorm, SiLU, softmax, RoPE, Q.K/A.V, Linear (TD over T)",
               "structure": str(structure(snn))}
        rows.append(row)
        print(f"  ppl {row['perplexity']}  HumanEval {row['humaneval_passed']}/{row['problems']}  "
              f"agree {row['agree_fp32']}  {row['ms_per_token']} ms/token  {row['sj_energy_nj']} nJ", flush=True)
        del snn
    return rows


def spikemfm_rows(model, tok, data: dict, args, fp_tokens) -> list[dict]:
    rows = []
    for bits in args.bits:
        print(f"spikemfm {bits}-bit", flush=True)
        windows = data["calib"]
        qann = spikemfm.quantize(model, spikemfm.QuantConfig(bits=bits, smooth=SMOOTH),
                                 [windows[i:i + 2] for i in range(0, len(windows), 2)])
        ppl = perplexity(qann, data["test"], f"{bits}-bit test")
        q = {"converter": "spikemfm", "path": "QANN", "bits_or_levels": bits, "time_steps": 1,
             "perplexity": round(ppl, 3), **common(qann, f"qann{bits}", tok, data, args, fp_tokens)}
        rows.append(q)
        snn = spikemfm.convert(qann, spikemfm.ConvertConfig(max_spikes_per_step=None))
        rows.append(snn_row(snn, qann, q, data, args, "graded"))
        if bits in args.binary_bits:
            binary = spikemfm.convert(qann, spikemfm.ConvertConfig(max_spikes_per_step=1))
            rows.append(snn_row(binary, qann, q, data, args, "binary", energy=False))
            del binary
        del qann, snn
    return rows


def snn_row(snn, qann, q: dict, data: dict, args, mode: str, energy: bool = True) -> dict:
    """The SNN on the check window: equal to the QANN's logits? steps per pass; energy per token by profile."""
    ids = data["test"][0, :args.check_tokens][None]
    logits, steps, _, settled = chunked_pass(snn, ids, KVCache())
    passes = -(-ids.shape[1] // 32)
    row = {**q, "path": f"SNN {mode}", "time_steps": round(steps / passes, 1), "settled": settled,
           "snn_equals_qann": bool(settled and torch.equal(logits, qann(ids))), "ms_per_token": None,
           "note": "perplexity / HumanEval / agreement are the QANN's (logits equal once every pass settles)"}
    if energy:
        reports = per_token(token_reports(snn, data["prompt"], 2, [load_profile(p) for p in PROFILES]))
        row.update({f"{r['profile']}_nj": r["snn_nJ"] for r in reports})
    print(f"  {mode}: {row['time_steps']} steps/pass, SNN == QANN {row['snn_equals_qann']}", flush=True)
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    sj = [r for r in rows if r["converter"] == "spikingjelly"]
    ours = [r for r in rows if r["converter"] == "spikemfm" and r["path"].startswith("SNN")]
    fp = next(r for r in rows if r["converter"] == "fp32")
    axes[0].plot([r["time_steps"] for r in sj], [r["perplexity"] for r in sj], "o-", label="spikingjelly Qwen2 recipe")
    for r in ours:
        axes[0].scatter(r["time_steps"], r["perplexity"], marker="s" if "graded" in r["path"] else "^",
                        label=f"spikemfm {r['path']} {r['bits_or_levels']}-bit")
    axes[0].set_xlabel("time steps per pass (spikemfm: measured until settled)")
    e_sj = [(r["sj_energy_nj"], r["perplexity"]) for r in sj]
    axes[1].plot(*zip(*e_sj), "o-", label="spikingjelly (its estimator)")
    for r in ours:
        if r.get("standard_formula_nj"):
            axes[1].scatter(r["standard_formula_nj"], r["perplexity"], marker="s",
                            label=f"spikemfm {r['bits_or_levels']}-bit (standard_formula profile)")
    axes[1].set_xlabel("energy per token (nJ; each converter on its own estimator, same MAC/AC constants)")
    for ax in axes:
        ax.axhline(fp["perplexity"], color="k", ls="--", lw=0.8, label="FP32")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("test perplexity")
        ax.legend(fontsize=6)
    fig.suptitle("SmolLM2-135M on held-out stdlib code: spikingjelly 2.0 vs spikemfm", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--calib-windows", type=int, default=8)
    ap.add_argument("--eval-windows", type=int, default=4)
    ap.add_argument("--timesteps", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--bits", type=int, nargs="+", default=[8, 6, 4])
    ap.add_argument("--binary-bits", type=int, nargs="*", default=[4])
    ap.add_argument("--problems", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--gen-tokens", type=int, default=8)
    ap.add_argument("--check-tokens", type=int, default=32)
    ap.add_argument("--out", default="results/baselines_decoder")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    model = spikemfm.load(args.model)
    tok = spikemfm.models.load_tokenizer(args.model)
    test = code_windows(stdlib_files("test"), tok, args.window, args.eval_windows)
    data = {"calib": code_windows(stdlib_files("calibration"), tok, args.window, args.calib_windows), "test": test,
            "prompt": test[:1, :args.prompt_tokens], "problems": load_problems(args.problems)}
    fp = {"converter": "fp32", "path": "float", "bits_or_levels": 32, "time_steps": 1,
          "perplexity": round(perplexity(model, test, "fp32 test"), 3), **common(model, "fp32", tok, data, args, None)}
    rows = [fp, *sj_rows(llama_to_qwen2(model), tok, data, args, fp["_tokens"]),
            *spikemfm_rows(model, tok, data, args, fp["_tokens"])]
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    with output_set(Path(args.out)) as stage:
        save_table(stage, "baselines_decoder", rows, vars(args), f"{args.model}: spikingjelly 2.0's Qwen2 recipe vs "
                   "spikemfm on held-out stdlib code (perplexity, HumanEval pass count, time steps, energy per token)")
        plot(rows, stage / "baselines_decoder.png")
    print(f"wrote {args.out}/baselines_decoder.{{json,csv,md,png}}")


if __name__ == "__main__":
    main()

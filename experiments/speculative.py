"""Speculative decoding with spiking drafts on SmolLM2-135M: acceptance, tokens per target pass against the
formula, simulated speed-up over plain spiking decoding, and energy per accepted token — output ≡ plain greedy.

Target: the 8-bit QANN / graded SNN (SmoothQuant α = 0.5, calibration split). Drafts sharing its tokenizer:
``bits4`` — the same model quantized at 4 bits; ``layers<k>`` — self-speculative, the target's first k blocks
and its own head; one kind per ``--draft-model hf-lm:<folder>`` (named after the folder) — a small draft distilled
from the target on the calibration files by experiments/train_draft.py, quantized at 8 bits. Protocol: every draft's k and γ are chosen on the **validation** split (prompts of
``--prompt-tokens`` tokens cut from the standard library's validation files, ``--tokens`` greedy tokens each,
by simulated time-step speed-up), then each draft kind's chosen configuration reads the **test** split once.
Acceptance is measured on the QANN (its tokens equal the SNN's: every pass settles); the simulated speed-up and
the energy are measured on the SNN for ``--snn-tokens`` tokens of the first test prompt, each decode pass priced
(:class:`spikemfm.lm.energy.PricedRunner`): time = algorithmic steps + pipeline depth − 1 per pass (a chip that
moves spikes one layer per step), and the Loihi 2 system model's latency (synaptic-operation-bound steps);
energy per accepted token with the draft's passes and the verification passes both counted.
Writes results/speculative/{json,csv,md,png}.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import spikemfm
from spikemfm.core.io import output_set, save_figure, save_table
from spikemfm.core.provenance import add_results_args, results_run
from spikemfm.data.code import code_windows, stdlib_files
from spikemfm.energy import load_profile
from spikemfm.energy.system import neuron_depth
from spikemfm.lm import generate
from spikemfm.lm.build import SMOOTH
from spikemfm.lm.energy import Priced
from spikemfm.lm.speculative import expected_tokens_per_pass, first_layers

PROFILES = ("horowitz45", "loihi2")


def acceptance(target, draft, prompts: torch.Tensor, tokens: int, gamma: int, plains: list) -> dict:
    """α, tokens per verification pass and whether every output equals plain greedy (``plains``: the target's
    plain generations of the prompts), over the prompts."""
    drafted: list[int] = []
    accepted: list[int] = []
    same = True
    for p, plain in zip(prompts, plains):
        spec = generate(target, p[None], tokens, assistant=draft, num_assistant_tokens=gamma)
        same &= torch.equal(plain.tokens, spec.tokens)
        drafted, accepted = drafted + spec.drafted, accepted + spec.accepted
    alpha = sum(accepted) / sum(drafted) if sum(drafted) else 0.0
    # the formula per round at the γ that round could draft (the last rounds of a budget draft fewer)
    formula = sum(expected_tokens_per_pass(alpha, g) for g in drafted) / len(drafted)
    return {"alpha": round(alpha, 4), "tokens_per_pass": round(sum(a + 1 for a in accepted) / len(accepted), 3),
            "formula_tokens_per_pass": round(formula, 3), "equals_plain": same}


def steps_speedup(alpha: float, gamma: int, target_depth: int, draft_depth: int, steps: float = 2.0) -> float:
    """Time-step speed-up predicted from α (validation choice): plain = (steps + depth − 1) per token; a round
    costs γ draft passes and one verification pass and yields (1 − α^(γ+1)) / (1 − α) tokens."""
    per_round = gamma * (steps + draft_depth - 1) + (steps + target_depth - 1)
    return expected_tokens_per_pass(alpha, gamma) * (steps + target_depth - 1) / per_round


def drafts(models: dict, kind: str, k: int | None, path: str = "q"):
    """The draft of one kind on the QANN (``path`` q) or SNN (s) path."""
    if kind == "layers":
        return first_layers(models[f"{path}8"], k)
    return models[f"{path}4"] if kind == "bits4" else models[f"{kind}/{path}8"]


def kind_of(name: str) -> str:
    """A distilled draft's kind: its folder's name (``hf-lm:runs/draft-smollm2`` → ``draft-smollm2``)."""
    return Path(name.split(":", 1)[-1]).name


def kinds(models: dict, args) -> list[tuple[str, list]]:
    """(draft kind, its k values) of this run."""
    return [("bits4", [None]), ("layers", args.layers)] + [(kind_of(m), [None]) for m in args.draft_model]


def choose(models: dict, val: torch.Tensor, args, depth) -> list[dict]:
    """Every (draft, k, γ) on the validation prompts; the best per draft kind by predicted step speed-up."""
    rows, plains = [], [generate(models["q8"], p[None], args.tokens) for p in val]
    for kind, ks in kinds(models, args):
        for k in ks:
            for gamma in (args.gammas[:1] if kind == "bits4" else args.gammas):  # the 4-bit draft: one γ
                r = acceptance(models["q8"], drafts(models, kind, k), val, args.tokens, gamma, plains)
                d_depth = neuron_depth(drafts(models, kind, k, "s").netlist)
                r.update({"split": "validation", "draft": kind if k is None else f"layers{k}", "kind": kind, "k": k,
                          "gamma": gamma, "predicted_step_speedup": round(steps_speedup(
                              r["alpha"], gamma, depth["q8"], d_depth), 3)})
                rows.append(r)
                print(f"  validation {r['draft']:9} gamma={gamma}: alpha {r['alpha']} tokens/pass "
                      f"{r['tokens_per_pass']} predicted x{r['predicted_step_speedup']}", flush=True)
    return rows


def snn_run(models: dict, kind: str | None, k: int | None, gamma: int, prompt: torch.Tensor, n: int) -> dict:
    """The SNN target (plain, or with the SNN of a draft) priced pass by pass: totals per decoded token."""
    profiles, chip = [load_profile(p) for p in PROFILES], load_profile("loihi2")
    target = Priced(models["s8"], profiles, chip)
    if kind is None:
        gen = generate(target, prompt, n)
        draft_totals = None
    else:
        draft = Priced(drafts(models, kind, k, "s"), profiles, chip)
        gen = generate(target, prompt, n, assistant=draft, num_assistant_tokens=gamma)
        draft_totals = draft.last.totals
    decoded = gen.new_tokens.shape[1] - 1  # the first new token comes from the prefill on every path
    out = {"tokens": gen.new_tokens[0].tolist(), "exact": gen.exact}
    for key in ("steps", "latency_ms", "system_nj", *(f"{p}_nj" for p in PROFILES)):
        total = target.last.totals[key] + (draft_totals[key] if draft_totals else 0.0)
        out[f"{key}_per_token"] = total / decoded
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=48)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--snn-tokens", type=int, default=8)
    ap.add_argument("--gammas", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--layers", type=int, nargs="+", default=[10, 20])
    ap.add_argument("--calib-windows", type=int, default=8)
    ap.add_argument("--draft-model", nargs="*", default=[], help="distilled drafts with the model's tokenizer "
                    "(hf-lm:<folder> of experiments/train_draft.py)")
    ap.add_argument("--out", default="results/speculative")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    model = spikemfm.load(args.model)
    tok = spikemfm.models.load_tokenizer(args.model)
    cal = code_windows(stdlib_files("calibration"), tok, 128, args.calib_windows)
    batches = [cal[i:i + 2] for i in range(0, len(cal), 2)]
    models = {f"q{b}": spikemfm.quantize(model, spikemfm.QuantConfig(bits=b, smooth=SMOOTH), batches) for b in (8, 4)}
    for b in (8, 4):
        models[f"s{b}"] = spikemfm.convert(models[f"q{b}"], spikemfm.ConvertConfig(max_spikes_per_step=None))
    for name in args.draft_model:
        kind = kind_of(name)
        models[f"{kind}/q8"] = spikemfm.quantize(spikemfm.load(name), spikemfm.QuantConfig(bits=8, smooth=SMOOTH),
                                                 batches)
        models[f"{kind}/s8"] = spikemfm.convert(models[f"{kind}/q8"], spikemfm.ConvertConfig(max_spikes_per_step=None))
    depth = {"q8": neuron_depth(models["s8"].netlist)}
    val = code_windows(stdlib_files("validation"), tok, args.prompt_tokens, args.prompts)
    test = code_windows(stdlib_files("test"), tok, args.prompt_tokens, args.prompts)
    rows = choose(models, val, args, depth)
    plain = snn_run(models, None, None, 1, test[:1], args.snn_tokens)
    plains = [generate(models["q8"], p[None], args.tokens) for p in test]
    for kind, _ in kinds(models, args):
        best = max((r for r in rows if r["kind"] == kind), key=lambda r: r["predicted_step_speedup"])
        r = acceptance(models["q8"], drafts(models, kind, best["k"]), test, args.tokens, best["gamma"], plains)
        s = snn_run(models, kind, best["k"], best["gamma"], test[:1], args.snn_tokens)
        r.update({"split": "test", "draft": best["draft"], "kind": kind, "k": best["k"], "gamma": best["gamma"],
                  "snn_equals_plain": s["tokens"] == plain["tokens"] and s["exact"],
                  "step_speedup": round(plain["steps_per_token"] / s["steps_per_token"], 3),
                  "loihi2_latency_speedup": round(plain["latency_ms_per_token"] / s["latency_ms_per_token"], 3),
                  **{f"{p}_nj_per_token": round(s[f"{p}_nj_per_token"], 1) for p in PROFILES},
                  **{f"plain_{p}_nj_per_token": round(plain[f"{p}_nj_per_token"], 1) for p in PROFILES},
                  "system_nj_per_token": round(s["system_nj_per_token"]),
                  "plain_system_nj_per_token": round(plain["system_nj_per_token"])})
        rows.append(r)
        print(f"  test {r['draft']} gamma={r['gamma']}: alpha {r['alpha']} steps x{r['step_speedup']} "
              f"loihi2 latency x{r['loihi2_latency_speedup']} SNN == plain {r['snn_equals_plain']}", flush=True)
    with output_set(Path(args.out)) as stage:
        save_table(stage, "speculative", rows, vars(args), f"{args.model}: speculative decoding, 8-bit target, "
                   "drafts chosen on validation, test read once per draft kind")
        plot(rows, stage / "speculative.png")
    print(f"wrote {args.out}/speculative.{{json,csv,md,png}}")


def plot(rows: list[dict], path: Path) -> None:
    """Validation: measured tokens per pass against the formula; α per draft and γ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    val = [r for r in rows if r["split"] == "validation"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for g in sorted({r["gamma"] for r in val}):
        sel = [r for r in val if r["gamma"] == g]
        ax.scatter([r["formula_tokens_per_pass"] for r in sel], [r["tokens_per_pass"] for r in sel], label=f"γ={g}")
        for r in sel:
            ax.annotate(r["draft"], (r["formula_tokens_per_pass"], r["tokens_per_pass"]), fontsize=6)
    lim = max(max(r["tokens_per_pass"], r["formula_tokens_per_pass"]) for r in val) * 1.1
    ax.plot([1, lim], [1, lim], "k--", lw=0.8)
    ax.set_xlabel("(1 − α^(γ+1)) / (1 − α)")
    ax.set_ylabel("measured tokens per verification pass")
    ax.set_title("speculative decoding, validation prompts", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    main()

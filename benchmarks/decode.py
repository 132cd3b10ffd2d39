"""Decoding speed of a causal LM: prefill and per-token decode time of FP32 (Hugging Face, its KV cache), the QANN
and the SNN (integer KV cache, each pass stepped until it settles), side by side in one run.

Prompt: the first ``--prompt-tokens`` tokens of the standard library's test split; then ``--new-tokens`` greedy
tokens. Each repetition runs the three paths one after the other on fresh caches (the machine's speed drifts, so
they are measured next to each other); a row reports the median and range over ``--reps`` repetitions of the
prefill time and of the median decode time per token. The SNN row adds its steps per decoded token and the
target ratio (SNN decode time per token) / (steps × FP32 decode time per token) — target ≤ 1. Memory: KV-cache
bytes per cached token, and the process's peak RSS after each path (cumulative: a process never gives its peak
back). Writes results/benchmarks/decode.{json,csv,md}.

Run: ``python benchmarks/decode.py`` (``--model hf-lm:<folder>`` for another causal LM)
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import torch

from spikemfm.core.io import output_set, save_table
from spikemfm.core.provenance import add_results_args, results_run
from spikemfm.data.code import code_windows, stdlib_files
from spikemfm.lm.build import build_paths
from spikemfm.lm.generate import runner_for


def one_run(model, prompt: torch.Tensor, new_tokens: int) -> dict:
    """Prefill time, per-token decode times, steps, tokens and cache bytes of one fresh greedy generation."""
    runner = runner_for(model)
    t0 = time.perf_counter()
    logits, steps, _, settled = runner.run(prompt)
    prefill = time.perf_counter() - t0
    toks, times, dsteps, exact = [], [], [], settled
    for _ in range(new_tokens):
        tok = logits[:, -1].argmax(-1)
        toks.append(int(tok[0]))
        t0 = time.perf_counter()
        logits, steps, _, settled = runner.run(tok[:, None])
        times.append(time.perf_counter() - t0)
        dsteps.append(steps)
        exact = exact and settled
    length = prompt.shape[1] + new_tokens
    cache = runner.cache_bytes() if runner.path != "fp32" else _hf_cache_bytes(runner.past)
    return {"prefill": prefill, "decode": statistics.median(times), "steps": statistics.mean(dsteps),
            "tokens": toks, "exact": exact, "cache_per_token": cache / length}


def _hf_cache_bytes(past) -> int:
    """Bytes of a Hugging Face cache's key / value tensors (any cache class: every tensor it holds)."""
    seen = [t for layer in getattr(past, "layers", []) for t in (getattr(layer, "keys", None),
                                                                   getattr(layer, "values", None))
            if isinstance(t, torch.Tensor)]
    if not seen and hasattr(past, "key_cache"):
        seen = [*past.key_cache, *past.value_cache]
    return sum(t.numel() * t.element_size() for t in seen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default="results/benchmarks")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    models, tok = build_paths(args.model, ("fp32", "qann", "snn"), args.bits, progress=True)
    prompt = code_windows(stdlib_files("test"), tok, args.prompt_tokens, 1)
    runs: dict[str, list[dict]] = {p: [] for p in models}
    rss: dict[str, float] = {}
    one_run(models["fp32"], prompt, 2)  # untimed warm-up of the float path's kernels
    for rep in range(args.reps):
        for path, model in models.items():
            runs[path].append(one_run(model, prompt, args.new_tokens))
            rss[path] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"rep {rep + 1}/{args.reps} {path}: decode {1e3 * runs[path][-1]['decode']:.1f} ms/token", flush=True)
    rows = [_row(path, rs, runs, rss[path]) for path, rs in runs.items()]
    with output_set(Path(args.out)) as stage:
        save_table(stage, "decode", rows, vars(args), f"{args.model} decoding at {args.bits} bits: prefill of "
                   f"{args.prompt_tokens} tokens and decode per token, median [range] of {args.reps} repetitions")
    for r in rows:
        print({k: r[k] for k in ("path", "decode_ms_per_token", "steps_per_decoded_token", "ratio_vs_steps_x_fp32")})
    print(f"wrote {args.out}/decode.{{json,csv,md}}")


def _row(path: str, rs: list[dict], runs: dict, rss_mib: float) -> dict:
    med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
    rng = lambda k: f"{1e3 * min(r[k] for r in rs):.1f}-{1e3 * max(r[k] for r in rs):.1f}"  # noqa: E731
    fp_decode = [r["decode"] for r in runs["fp32"]]
    ratios = [r["decode"] / (r["steps"] * f) for r, f in zip(rs, fp_decode)]
    return {"path": path, "prefill_ms": round(1e3 * med("prefill"), 1), "prefill_range_ms": rng("prefill"),
            "decode_ms_per_token": round(1e3 * med("decode"), 2), "decode_range_ms": rng("decode"),
            "steps_per_decoded_token": round(med("steps"), 2),
            "ratio_vs_steps_x_fp32": round(statistics.median(ratios), 3) if path == "snn" else None,
            "ratio_range": f"{min(ratios):.3f}-{max(ratios):.3f}" if path == "snn" else None,
            "tokens_equal_qann": rs[0]["tokens"] == runs["qann"][0]["tokens"],
            "tokens_equal_fp32": rs[0]["tokens"] == runs["fp32"][0]["tokens"], "exact": all(r["exact"] for r in rs),
            "kv_cache_bytes_per_token": round(rs[0]["cache_per_token"]), "peak_rss_mib_after": round(rss_mib)}


if __name__ == "__main__":
    main()

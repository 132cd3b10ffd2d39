"""Scale: time and peak memory of quantize, convert and simulate for ViT-S/16 and ViT-B/16 at 224 and open_clip
ViT-B-32 (image and text towers) — all random-init (no weights of these exist offline) on real inputs — against
T, batch and depth, each simulation with SNN / (T × FP32 forward) measured in the same run; and the speed-up of
`spikemfm evaluate` with 2 processes under torchrun (gloo) over 1 on this machine.

Every case runs in a fresh subprocess so that its peak memory is its own: a thread samples the process's
resident set (``/proc/self/statm``) every 5 ms and each phase reports the largest value seen while it ran
(``peak_rss_gib``: the whole process — Python, torch, the float model, the QANN — not only the phase's own
allocations). Inputs: Fashion-MNIST test images fitted to 224×224 RGB, real sentences for the text tower;
calibration on the training split. Quantization: 8 bits, float64 QANN (the reference precision) unless a row
says float32; spikes: at most 4 per neuron and step (every step does work) unless a row says otherwise.

Run: ``python benchmarks/scaling.py`` (~30 min on 2 cores) → results/benchmarks/scaling.{json,csv,md,png} (the
model cases) and results/benchmarks/scaling_evaluate.{json,csv,md} (the evaluate speed-up); ``--part cases`` or
``--part evaluate`` runs one of the two.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from spikemfm.core.provenance import add_results_args, results_run

CASES = [  # (name, model, tower, model_args, [(T, batch, extra)])
    ("ViT-S/16", "timm:vit_small_patch16_224", "image", {}, [(8, 1, {}), (8, 8, {})]),
    ("ViT-B/16", "timm:vit_base_patch16_224", "image", {},
     [(4, 2, {}), (8, 2, {}), (16, 2, {}), (8, 1, {}), (8, 8, {}), (8, 8, {"max_memory_mib": 1024}),
      (8, 2, {"max_spikes": 1}), (8, 2, {"max_spikes": None})]),
    ("ViT-B/16 float32", "timm:vit_base_patch16_224", "image", {"precision": "float32"}, [(8, 8, {})]),
    ("ViT-B/16 depth 3", "timm:vit_base_patch16_224", "image", {"depth": 3}, [(8, 2, {})]),
    ("ViT-B/16 depth 6", "timm:vit_base_patch16_224", "image", {"depth": 6}, [(8, 2, {})]),
    ("open_clip ViT-B-32 image", "open_clip:ViT-B-32", "image", {}, [(8, 8, {})]),
    ("open_clip ViT-B-32 text", "open_clip:ViT-B-32", "text", {}, [(8, 8, {})]),
]


class PeakRSS:
    """Largest resident set size (bytes) of this process while the ``with`` block ran, sampled every 5 ms."""

    def __enter__(self) -> "PeakRSS":
        self.peak, self._stop = _rss(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _gib(n: float) -> float:
    return round(n / 2 ** 30, 3)


def _tower(model: str, tower: str, args: dict):
    import spikemfm
    from spikemfm.ir import OpenClipTextTower

    kwargs = {k: v for k, v in args.items() if k != "precision"}
    m = spikemfm.load(model, **kwargs).eval()
    if model.startswith("open_clip:"):
        return m.visual if tower == "image" else OpenClipTextTower(m)
    return m


def _inputs(module, graph, tower: str, n: int, split: str):
    from spikemfm.app.data import DataSource, real_batches
    from spikemfm.app.inputs import input_spec

    if tower == "image":
        return real_batches(graph, input_spec(module, graph), None, split, n, n, DataSource())[0][0]
    import open_clip

    tok = open_clip.get_tokenizer("ViT-B-32")
    return real_batches(graph, None, lambda s: tok(s), split, n, n, DataSource())[0][0]


def run_case(spec: dict) -> list[dict]:
    """One model: quantize, convert, then every (T, batch) simulation with its FP32 forward beside it."""
    from spikemfm.convert import ConvertConfig, QuantConfig, quantize
    from spikemfm.snn import convert
    from spikemfm.convert.qann import as_graph
    from spikemfm.snn import simulate
    from spikemfm.snn.batching import bytes_per_input

    module = _tower(spec["model"], spec["tower"], spec["args"])
    graph = as_graph(module)
    calib = [_inputs(module, graph, spec["tower"], 4, "train") for _ in range(2)]
    params = sum(p.numel() for p in module.parameters())
    base = {"case": spec["name"], "params_M": round(params / 1e6, 1), "tokens": None}
    clip = _time_clip_search()
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        qann = quantize(module, QuantConfig(bits=8, precision=spec["args"].get("precision", "float64")), calib)
        t_q = time.perf_counter() - t0
    rows = [{**base, "phase": "quantize", "seconds": round(t_q, 2), "clip_search_s": round(clip[0], 2),
             "peak_rss_gib": _gib(mem.peak)}]
    print(json.dumps(rows[-1]), flush=True)
    for steps, batch, extra in spec["runs"]:
        x = _inputs(module, graph, spec["tower"], batch, "test")
        ms = extra.get("max_spikes", 4)
        t0 = time.perf_counter()
        snn = convert(qann, ConvertConfig(max_spikes_per_step=ms))
        t_c = time.perf_counter() - t0
        with torch.no_grad():
            module(x)  # warm-up
            fp32 = statistics.median(_timed(lambda: module(x)) for _ in range(3))
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            sim = simulate(snn, x, steps, max_memory_mib=extra.get("max_memory_mib"))
            t_s = time.perf_counter() - t0
        tokens = int(x.shape[-1]) if spec["tower"] == "text" else snn.netlist.tokens
        rows.append({**base, "tokens": tokens, "phase": "simulate", "T": steps, "batch": batch,
                     "max_spikes": "graded" if ms is None else ms, "max_memory_mib": extra.get("max_memory_mib"),
                     "convert_s": round(t_c, 3), "seconds": round(t_s, 2), "fp32_forward_ms": round(1e3 * fp32, 1),
                     "ratio_snn_over_T_x_fp32": round(t_s / (steps * fp32), 2), "peak_rss_gib": _gib(mem.peak),
                     "estimated_state_gib": _gib(bytes_per_input(snn, tokens) * batch),
                     "spikes_per_input": round(sim.total_spikes() / batch)})
        print(json.dumps(rows[-1]), flush=True)
        del sim
    return rows


def _time_clip_search() -> list[float]:
    """Wraps the calibration's clip search so that its seconds add up in the returned one-element list."""
    from spikemfm.convert import qann as qann_mod

    spent, inner = [0.0], qann_mod.calibrate_step

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0
    qann_mod.calibrate_step = timed
    return spent


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def evaluate_speedup(images: int) -> dict:
    """`spikemfm evaluate` of one saved tiny-CLIP SNN with 1 process, then 2 under torchrun; wall times."""
    exe = Path(sys.executable).parent
    work = Path(tempfile.mkdtemp(prefix="spikemfm-scaling-"))
    model = work / "model"
    subprocess.run([str(exe / "spikemfm"), "convert", "--model", "tiny-clip-fmnist", "--bits", "8", "--max-spikes",
                    "4", "-T", "2", "--eval-samples", "2", "--out", str(model), "--no-progress"], check=True,
                   capture_output=True)
    args = ["evaluate", str(model / "model.snn.pt"), "--images", str(images), "--batch-size", "25", "-T", "8",
            "--profile", "loihi2", "--no-progress"]
    times, rows = {}, {}
    cores = os.cpu_count() or 2
    for n in (1, 2):
        threads = max(1, cores // n)  # the machine's cores shared out: one process uses all, two half each
        dest = work / f"p{n}"
        cmd = [str(exe / "spikemfm"), *args, "--out", str(dest)] if n == 1 else \
            [str(exe / "torchrun"), "--standalone", "--nproc-per-node", str(n), "-m", "spikemfm.cli", *args,
             "--out", str(dest)]
        t0 = time.perf_counter()
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads)}
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        times[n] = time.perf_counter() - t0
        rows[n] = json.loads((dest / "evaluate.json").read_text())["rows"]
    shutil.rmtree(work, ignore_errors=True)
    return {"case": "spikemfm evaluate tiny-clip-fmnist", "phase": "evaluate", "T": 8, "batch": 25, "cores": cores,
            "inputs": images, "seconds_1_process": round(times[1], 1), "seconds_2_processes": round(times[2], 1),
            "speedup_2_over_1": round(times[1] / times[2], 2), "same_rows": rows[1] == rows[2]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="*", help="names of CASES to run (default: all)")
    ap.add_argument("--part", choices=["all", "cases", "evaluate"], default="all")
    ap.add_argument("--eval-images", type=int, nargs="+", default=[400, 2000],
                    help="inputs of the evaluate speed-up (one row each)")
    ap.add_argument("--out", default="results/benchmarks")
    ap.add_argument("--case-json", help=argparse.SUPPRESS)  # internal: run one case in this process
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    if args.case_json:
        run_case(json.loads(args.case_json))
        return
    out = Path(args.out)
    if args.part in ("all", "evaluate"):
        from spikemfm.core.io import output_set, save_table

        ev_rows = [evaluate_speedup(n) for n in args.eval_images]
        print(*(json.dumps(r) for r in ev_rows), sep="\n", flush=True)
        with output_set(out) as stage:
            print(save_table(stage, "scaling_evaluate", ev_rows, vars(args),
                             f"spikemfm evaluate, 1 process vs 2 under torchrun (gloo), {os.cpu_count()} CPUs"))
    if args.part == "evaluate":
        return
    rows = []
    for name, model, tower, margs, runs in CASES:
        if args.cases and name not in args.cases:
            continue
        spec = {"name": name, "model": model, "tower": tower, "args": margs, "runs": runs}
        done = subprocess.run([sys.executable, __file__, "--case-json", json.dumps(spec)], capture_output=True,
                              text=True)
        got = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0:
            got.append({"case": name, "phase": "error", "error": done.stderr.strip().splitlines()[-1][:200]})
        rows += got
        print(*(json.dumps(r) for r in got), sep="\n", flush=True)
    _save(rows, vars(args), out)


def _save(rows: list[dict], config: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spikemfm.core.io import output_set, save_figure, save_table

    title = (f"Scaling on this machine ({os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, no GPU): "
             "random-init towers on real inputs")
    sims = [r for r in rows if r.get("phase") == "simulate"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in sims:
        label = f"{r['case']} B{r['batch']} T{r['T']}"
        axes[0].scatter(r["params_M"], r["peak_rss_gib"], s=12 + 4 * r["batch"])
        axes[0].annotate(label, (r["params_M"], r["peak_rss_gib"]), fontsize=6)
        axes[1].scatter(r["T"] * r["batch"], r["ratio_snn_over_T_x_fp32"], s=12)
        axes[1].annotate(label, (r["T"] * r["batch"], r["ratio_snn_over_T_x_fp32"]), fontsize=6)
    axes[0].set(xlabel="parameters (M)", ylabel="peak RSS of simulate (GiB)", title="memory")
    axes[1].set(xlabel="T × batch", ylabel="SNN / (T × FP32 forward)", xscale="log", title="time ratio")
    fig.suptitle(title, fontsize=8)
    with output_set(out) as stage:
        print(save_table(stage, "scaling", rows, config, title))
        save_figure(fig, stage / "scaling.png")


if __name__ == "__main__":
    main()

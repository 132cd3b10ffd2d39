"""SNN simulation speed: wall time of T steps divided by (T × FP32 ANN forward time), same batch, one run.

Model: the bundled tiny-clip-fmnist image tower; batch: real Fashion-MNIST test images. After one untimed
T-step warm-up run, each repetition times the FP32 timm forward (median of 5) and then one T-step simulation,
and takes their ratio; a row reports the median ratio over the repetitions (7 by default; the machine's
speed drifts, so the two are measured next to each other rather than minutes apart). Rows: float path
precision (float64 reference / float32) × spike mode × T, with the step runtime (fused kernels, the
default), plus the time-batched runtime and the step runtime with its torch kernels (``runtime="torch"``, the
path that runs on CUDA) for comparison. Target: ratio ≤ 1.0. Writes results/benchmarks/simulation_speed.* (json,
csv, md, png).

Run: ``python benchmarks/simulation_speed.py`` (``--device cuda --out results/benchmarks/cuda``: both the FP32
forward and the SNN on the GPU, torch runtime only)
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from spikemfm.convert import ConvertConfig, QuantConfig, parse_max_spikes, quantize
from spikemfm.snn import convert
from spikemfm.data import load_fashion_mnist
from spikemfm.core.io import save_table
from spikemfm.models.tiny_clip import load_tiny_clip
from spikemfm.app.tiny_clip import calibration_images
from spikemfm.app.report import draw_plot
from spikemfm.snn import simulate
from spikemfm.snn.device import to_device
from spikemfm.core.timing import median_time
from spikemfm.core.provenance import add_results_args, results_run


def _synced(fn, device: torch.device):
    """``fn`` followed by a CUDA synchronise on a GPU (so the wall time covers the kernels, not their launch)."""
    if device.type != "cuda":
        return fn
    return lambda: (fn(), torch.cuda.synchronize(device))


def _ratio_row(model, snn, x, steps: int, runtime: str, reps: int) -> dict:
    """Median over ``reps`` of (one T-step simulation) / (T × FP32 forward timed right before it)."""
    run = _synced(lambda: simulate(snn, x, steps, runtime=runtime), x.device)
    run()  # untimed warm-up: compiled kernels, caches, the allocator's heap
    fp32, snn_t = [], []
    for _ in range(reps):
        with torch.no_grad():
            fp32.append(median_time(_synced(lambda: model.visual(x), x.device), 5))
        t0 = time.perf_counter()
        run()
        snn_t.append(time.perf_counter() - t0)
    ratios = [s / (steps * f) for s, f in zip(snn_t, fp32)]
    return {"T": steps, "runtime": runtime, "fp32_forward_ms": round(1e3 * statistics.median(fp32), 2),
            "snn_T_steps_ms": round(1e3 * statistics.median(snn_t), 1),
            "ratio_snn_over_T_x_fp32": round(statistics.median(ratios), 3),
            "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--timesteps", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--max-spikes", type=str, nargs="+", default=["1", "4", "16", "graded"])
    p.add_argument("--precisions", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    p.add_argument("--time-runtime", type=str, nargs="*", default=["1", "graded"],
                   help="spike modes also timed with the time-batched runtime (float32, every T)")
    p.add_argument("--torch-runtime", type=str, nargs="*", default=["4", "graded"],
                   help="spike modes also timed with the step runtime's torch kernels (runtime='torch')")
    p.add_argument("--device", default="cpu", help="cpu, or cuda (then only the torch runtime runs)")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--out", default="results/benchmarks")
    add_results_args(p)
    args = p.parse_args()
    results_run(args.allow_dirty)
    device = torch.device(args.device)
    model = load_tiny_clip().to(device)
    x = load_fashion_mnist("test").subset(args.batch_size, seed=0).tensors()[0].to(device)
    rows = []
    for precision in args.precisions:
        qann = quantize(model.visual.cpu(), QuantConfig(bits=args.bits, precision=precision), calibration_images())
        model.visual.to(device)
        qann = to_device(qann, device)
        with torch.no_grad():
            t_qann = median_time(_synced(lambda: qann(x), device), args.reps)
        for ms in args.max_spikes:
            snn = to_device(convert(qann, ConvertConfig(max_spikes_per_step=parse_max_spikes(ms))), device)
            runtimes = ["torch"] if device.type != "cpu" else \
                ["step"] + (["time"] if precision == "float32" and ms in args.time_runtime else []) + \
                (["torch"] if ms in args.torch_runtime else [])
            for runtime in runtimes:
                for steps in args.timesteps:
                    row = _ratio_row(model, snn, x, steps, runtime, args.reps)
                    rows.append({"precision": precision, "max_spikes_per_step": ms, **row,
                                 "qann_forward_ms": round(1e3 * t_qann, 2)})
                    print(rows[-1], flush=True)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    title = (f"SNN simulation time / (T × FP32 forward), tiny-clip image tower, batch {args.batch_size}, "
             f"{args.bits}-bit, {where}")
    print(save_table(Path(args.out), "simulation_speed", rows, vars(args), title))
    draw_plot("simulation_speed", {"title": title, "rows": rows}, Path(args.out) / "simulation_speed.png")


if __name__ == "__main__":
    main()

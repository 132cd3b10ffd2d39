"""SNN simulation speed: wall time of T steps divided by (T × FP32 ANN forward time), same batch, one run.

Model: the bundled tiny-clip-fmnist image tower; batch: real Fashion-MNIST test images. The FP32
time is the median of repeated timm forwards, measured right before and after each SNN row (mean of the two). Target: ratio ≤ 1.0. Writes results/benchmarks/simulation_speed.*
(json, csv, md, png).

Run: ``python benchmarks/simulation_speed.py``
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from spikemfm.convert import ConvertConfig, QuantConfig, convert, parse_max_spikes, quantize
from spikemfm.data import load_fashion_mnist
from spikemfm.io import save_table
from spikemfm.models.tiny_clip import load_tiny_clip
from spikemfm.pipeline import calibration_images
from spikemfm.report import draw_plot
from spikemfm.snn import simulate
from spikemfm.timing import median_time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--timesteps", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--max-spikes", type=str, nargs="+", default=["1", "4", "16", "graded"])
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", default="results/benchmarks")
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    model = load_tiny_clip()
    x = load_fashion_mnist("test").subset(args.batch_size, seed=0).tensors()[0]
    qann = quantize(model.visual, QuantConfig(bits=args.bits), calibration_images())
    def fp32_time() -> float:  # re-measured next to every row: the machine's speed drifts over a run
        with torch.no_grad():
            return median_time(lambda: model.visual(x), args.reps * 5)

    with torch.no_grad():
        t_qann = median_time(lambda: qann(x), args.reps)
    rows = []
    for ms in args.max_spikes:
        spikes = parse_max_spikes(ms)
        snn = convert(qann, ConvertConfig(max_spikes_per_step=spikes))
        for steps in args.timesteps:
            before = fp32_time()
            t_snn = median_time(lambda: simulate(snn, x, steps), args.reps)
            t_fp32 = (before + fp32_time()) / 2
            rows.append({"max_spikes_per_step": ms, "T": steps, "fp32_forward_ms": round(1e3 * t_fp32, 2),
                         "qann_forward_ms": round(1e3 * t_qann, 2), "snn_T_steps_ms": round(1e3 * t_snn, 1),
                         "ratio_snn_over_T_x_fp32": round(t_snn / (steps * t_fp32), 3)})
    title = (f"SNN simulation time / (T × FP32 forward), tiny-clip image tower, batch {args.batch_size}, "
             f"{args.bits}-bit, {torch.get_num_threads()} threads")
    print(save_table(Path(args.out), "simulation_speed", rows, vars(args), title))
    draw_plot("simulation_speed", {"title": title, "rows": rows}, Path(args.out) / "simulation_speed.png")


if __name__ == "__main__":
    main()

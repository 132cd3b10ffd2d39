"""Baselines side by side in one run, on the same tiny-CLIP image tower and the same test images.

Rows: FP32 ANN, int8 dense QANN, spikemfm's SNN (8-bit, <= --max-spikes spikes per neuron per step),
the naive rate-coded conversion (same SNN with unsigned IF neurons: what a ReLU→IF converter gives a
GELU transformer), and spikingjelly 2.0's STA transformer recipe (modes ``equivalent`` — not spike-driven —
and ``spiking_encoder``), converted for each T. Zero-shot top-1 on Fashion-MNIST test images with FP32 class
embeddings (only the image tower differs), and simulation wall time of T steps on one batch of 100 images,
next to T FP32 forwards. Writes results/baselines/baselines.{json,csv,md} and accuracy_vs_T.png.

Run: ``python experiments/baselines.py`` (``--n-test 200`` for a quick run).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from spikemfm.baselines import naive_unsigned, sta_convert, sta_outputs
from spikemfm.convert import ConvertConfig, QuantConfig, convert, quantize
from spikemfm.data import load_fashion_mnist
from spikemfm.io import save_figure, save_table
from spikemfm.models.tiny_clip import load_tiny_clip
from spikemfm.pipeline import calibration_images
from spikemfm.snn import simulate


def _accuracy(outputs_fn, xs: list[torch.Tensor], ys: list[torch.Tensor], clf: torch.Tensor) -> torch.Tensor:
    """Top-1 per step (T,) of ``outputs_fn(x) -> (T, B, D)`` over the batches."""
    correct = None
    for x, y in zip(xs, ys):
        emb = F.normalize(outputs_fn(x).double(), dim=-1)
        hit = ((emb @ clf.T).argmax(-1) == y).sum(-1).double()
        correct = hit if correct is None else correct + hit
    return correct / sum(len(y) for y in ys)


def _time(fn, reps: int = 2) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--timesteps", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--max-spikes", type=int, nargs="+", default=[16, 0], help="0 = graded spikes (no bound)")
    p.add_argument("--out", default="results/baselines")
    args = p.parse_args()
    model = load_tiny_clip()
    clf = model.zero_shot_classifier().double()
    x_all, y_all = load_fashion_mnist("test").subset(args.n_test, seed=0).tensors()
    xs, ys = list(x_all.split(100)), list(y_all.split(100))
    calib = calibration_images()
    qann = quantize(model.visual, QuantConfig(bits=args.bits), calib)
    variants = [(f"spikemfm SNN ({args.bits}-bit, " + (f"<={b} spikes/step)" if b else "graded spikes)"),
                 convert(qann, ConvertConfig(max_spikes_per_step=b or None))) for b in args.max_spikes]
    ours = variants[0][1]
    t_max = max(args.timesteps)
    with torch.no_grad():
        t_fp32 = _time(lambda: model.visual(xs[0]), 5)
        rows = [{"method": "FP32 ANN", "T": "-", "top1": float(_accuracy(lambda x: model.visual(x)[None], xs, ys, clf)[0]),
                 "sim_s_per_100": round(t_fp32, 4), "spike_driven": "no"},
                {"method": f"int{args.bits} dense QANN", "T": "-",
                 "top1": float(_accuracy(lambda x: qann(x)[None], xs, ys, clf)[0]),
                 "sim_s_per_100": round(_time(lambda: qann(xs[0])), 4), "spike_driven": "no"}]
    naive = (f"naive rate-coded (unsigned IF, {args.bits}-bit, " +
             (f"<={args.max_spikes[0]} spikes/step)" if args.max_spikes[0] else "graded spikes)"))
    for name, snn in variants + [(naive, naive_unsigned(ours))]:
        acc = _accuracy(lambda x: simulate(snn, x, t_max).outputs, tqdm(xs, desc=name[:24]), ys, clf)
        for t in args.timesteps:
            rows.append({"method": name, "T": t, "top1": float(acc[t - 1]),
                         "sim_s_per_100": round(_time(lambda: simulate(snn, xs[0], t)), 4),
                         "spike_driven": "neurons, synapses, Q·Kᵀ, A·V, GELU; float softmax/LayerNorm"})
    for mode in ("equivalent", "spiking_encoder"):
        for t in args.timesteps:
            sta = sta_convert(ours.graph, calib, t, mode)
            acc = _accuracy(lambda x: sta_outputs(sta, x, t), xs, ys, clf)
            rows.append({"method": f"spikingjelly STA ({mode})", "T": t, "top1": float(acc[-1]),
                         "sim_s_per_100": round(_time(lambda: sta_outputs(sta, xs[0], t)), 4),
                         "spike_driven": "no (accumulated-output equivalent)" if mode == "equivalent"
                         else "spike encoders after LayerNorm/GELU/attention; float affine"})
    for r in rows:
        r["sim_over_T_x_fp32"] = round(r["sim_s_per_100"] / ((r["T"] if r["T"] != "-" else 1) * t_fp32), 2)
    out = Path(args.out)
    print(save_table(out, "baselines", rows, vars(args),
                     f"Baselines on the tiny-CLIP image tower: zero-shot top-1 on {args.n_test} Fashion-MNIST test "
                     f"images (FP32 class embeddings) and simulation time per 100 images, one run"))
    plot(rows, out)


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for method in dict.fromkeys(r["method"] for r in rows if r["T"] != "-"):
        pts = [(r["T"], r["top1"]) for r in rows if r["method"] == method]
        ax.plot(*zip(*pts), marker="o", label=method)
    for r in rows:
        if r["T"] == "-":
            ax.axhline(r["top1"], ls="--", lw=0.8, color="gray")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("T")
    ax.set_ylabel("zero-shot top-1")
    ax.legend(fontsize=6)
    save_figure(fig, out / "accuracy_vs_T.png")
    plt.close(fig)


if __name__ == "__main__":
    main()

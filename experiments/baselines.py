"""Baselines side by side in one run, on the same tiny-CLIP image tower and the same test images.

Rows: FP32 ANN, int8 dense QANN, spikemfm's SNN (8-bit, <= --max-spikes spikes per neuron per step),
the naive rate-coded conversion (same SNN with unsigned IF neurons: what a ReLU→IF converter gives a
GELU transformer), and spikingjelly 2.0's STA transformer recipe (modes ``equivalent`` — not spike-driven —
and ``spiking_encoder``), converted for each T, and spikingjelly's SpikeZIP-TF recipe: the same tower with
GELU→ReLU and SpikeZIP quantizers (``--spikezip-level`` levels) after quantization-aware fine-tuning on the
Fashion-MNIST training split (``--spikezip-epochs``), converted once and read at every T; spikemfm's own
converter is run on those same fine-tuned ReLU weights next to it. Zero-shot top-1 on Fashion-MNIST test images with FP32 class
embeddings (only the image tower differs), and simulation wall time of T steps on one batch of 100 images,
next to T FP32 forwards. Writes results/baselines/baselines.{json,csv,md}, accuracy_vs_T.png and speed_vs_T.png.

Run: ``python experiments/baselines.py`` (``--n-test 200`` for a quick run).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from spikemfm.baselines import naive_unsigned, sta_convert, sta_outputs
from spikemfm.baselines.spikezip import relu_graph, spikezip_convert, spikezip_outputs, spikezip_qann, spikezip_qat
from spikemfm.convert import ConvertConfig, QuantConfig, parse_max_spikes, quantize
from spikemfm.snn import convert
from spikemfm.data import load_fashion_mnist
from spikemfm.core.io import save_figure, save_table
from spikemfm.models.tiny_clip import load_tiny_clip
from spikemfm.app.tiny_clip import calibration_images
from spikemfm.app.report import draw_plot
from spikemfm.snn import simulate
from spikemfm.core.timing import run_times
from spikemfm.core.provenance import add_results_args, results_run


def _accuracy(outputs_fn, xs: list[torch.Tensor], ys: list[torch.Tensor], clf: torch.Tensor) -> torch.Tensor:
    """Top-1 per step (T,) of ``outputs_fn(x) -> (T, B, D)`` over the batches."""
    correct = None
    for x, y in zip(xs, ys):
        emb = F.normalize(outputs_fn(x).double(), dim=-1)
        hit = ((emb @ clf.T).argmax(-1) == y).sum(-1).double()
        correct = hit if correct is None else correct + hit
    return correct / sum(len(y) for y in ys)


class Timer:
    """Times a method next to the FP32 forward, measured again right before and after it (the machine's
    speed drifts over a long run; a ratio against one FP32 time taken at the start would drift with it).
    Each time is the median of ``reps`` calls, with the range (min-max) beside it."""

    def __init__(self, fp32_forward, reps: int = 5) -> None:
        self.fp32, self.reps = fp32_forward, reps

    @torch.no_grad()
    def row(self, fn, steps: int | str) -> dict:
        fp32 = run_times(self.fp32, self.reps)
        times = run_times(fn, self.reps)
        fp32 += run_times(self.fp32, self.reps)
        t, t_fp32 = statistics.median(times), statistics.median(fp32)
        return {"sim_s_per_100": round(t, 4), "sim_s_range": f"{min(times):.4f}-{max(times):.4f}",
                "fp32_s_per_100": round(t_fp32, 4),
                "sim_over_T_x_fp32": round(t / ((steps if steps != "-" else 1) * t_fp32), 2)}


def _curve_rows(method: str, outputs_fn, xs, ys, clf, ts: list[int], timer: Timer,
                spike_driven: str) -> list[dict]:
    """Rows per T of a method read out at every step: accuracy from one run of max(ts) steps over all batches,
    time of a run of T steps on one batch. ``outputs_fn(x, T) -> (T, B, D)`` accumulated outputs."""
    acc = _accuracy(lambda x: outputs_fn(x, max(ts)), tqdm(xs, desc=method[:24]), ys, clf)
    return [{"method": method, "T": t, "top1": float(acc[t - 1]),
             **timer.row(lambda: outputs_fn(xs[0], t), t), "spike_driven": spike_driven} for t in ts]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--timesteps", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--max-spikes", type=parse_max_spikes, nargs="+", default=[16, None],
                   help="spikes per neuron per step: integers or 'graded' (no bound)")
    p.add_argument("--spikezip-level", type=int, default=16, help="SpikeZIP quantizer levels (16 = 4-bit)")
    p.add_argument("--spikezip-epochs", type=int, default=2, help="SpikeZIP QAT epochs on the 60k training images (-1: no SpikeZIP rows)")
    p.add_argument("--spikezip-timesteps", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per row (median and range reported)")
    p.add_argument("--out", default="results/baselines")
    add_results_args(p)
    args = p.parse_args()
    results_run(args.allow_dirty)
    model = load_tiny_clip()
    clf = model.zero_shot_classifier().double()
    x_all, y_all = load_fashion_mnist("test").subset(args.n_test, seed=0).tensors()
    xs, ys = list(x_all.split(100)), list(y_all.split(100))
    calib = calibration_images()
    qann = quantize(model.visual, QuantConfig(bits=args.bits), calib)
    variants = [(f"spikemfm SNN ({args.bits}-bit, " + (f"<={b} spikes/step)" if b is not None else "graded spikes)"),
                 convert(qann, ConvertConfig(max_spikes_per_step=b))) for b in args.max_spikes]
    ours = variants[0][1]
    with torch.no_grad():
        timer = Timer(lambda: model.visual(xs[0]), args.reps)
        rows = [{"method": "FP32 ANN", "T": "-", "top1": float(_accuracy(lambda x: model.visual(x)[None], xs, ys, clf)[0]),
                 **timer.row(lambda: model.visual(xs[0]), "-"), "spike_driven": "no"},
                {"method": f"int{args.bits} dense QANN", "T": "-",
                 "top1": float(_accuracy(lambda x: qann(x)[None], xs, ys, clf)[0]),
                 **timer.row(lambda: qann(xs[0]), "-"), "spike_driven": "no"}]
    naive = (f"naive rate-coded (unsigned IF, {args.bits}-bit, " +
             (f"<={args.max_spikes[0]} spikes/step)" if args.max_spikes[0] is not None else "graded spikes)"))
    for name, snn in variants + [(naive, naive_unsigned(ours))]:
        rows += _curve_rows(name, lambda x, t: simulate(snn, x, t).outputs, xs, ys, clf, args.timesteps, timer,
                            "neurons, synapses, Q·Kᵀ, A·V, GELU; float softmax/LayerNorm")
    for mode in ("equivalent", "spiking_encoder"):
        for t in args.timesteps:
            sta = sta_convert(ours.graph, calib, t, mode)
            acc = _accuracy(lambda x: sta_outputs(sta, x, t), xs, ys, clf)
            rows.append({"method": f"spikingjelly STA ({mode})", "T": t, "top1": float(acc[-1]),
                         **timer.row(lambda: sta_outputs(sta, xs[0], t), t),
                         "spike_driven": "no (accumulated-output equivalent)" if mode == "equivalent"
                         else "spike encoders after LayerNorm/GELU/attention; float affine"})
    extra = {}
    if args.spikezip_epochs >= 0:
        sz_rows, extra["spikezip_qat"] = spikezip_rows(model, ours.graph, clf, calib, xs, ys, args, timer)
        rows += sz_rows
    out = Path(args.out)
    print(save_table(out, "baselines", rows, vars(args),
                     f"Baselines on the tiny-CLIP image tower: zero-shot top-1 on {args.n_test} Fashion-MNIST test "
                     f"images (FP32 class embeddings) and simulation time per 100 images (median of {args.reps} runs, range beside)", extra))
    plot(rows, out)
    draw_plot("baselines", {"title": "simulation time vs T, same batch of 100 test images", "rows": rows},
              out / "speed_vs_T.png")


def spikezip_rows(model, graph, clf, calib, xs, ys, args, timer: Timer) -> tuple[list[dict], dict]:
    """SpikeZIP-TF (QAT'd ReLU QANN → spikingjelly STBIF SNN) and spikemfm on the same fine-tuned weights."""
    level, ts = args.spikezip_level, args.spikezip_timesteps
    bits = max(2, (level - 1).bit_length())
    qann = spikezip_qann(graph, level, calib)
    x_tr, y_tr = load_fashion_mnist("train").tensors()
    t0 = time.perf_counter()
    losses = spikezip_qat(qann, x_tr, y_tr, clf, float(model.logit_scale.detach().exp()), args.spikezip_epochs)
    qat_s = time.perf_counter() - t0
    tag = f"level {level}, ReLU, {args.spikezip_epochs}-epoch QAT"
    with torch.no_grad():
        rows = [{"method": f"SpikeZIP QANN ({tag}, dense)", "T": "-",
                 "top1": float(_accuracy(lambda x: qann(x)[None], xs, ys, clf)[0]),
                 **timer.row(lambda: qann(xs[0]), "-"), "spike_driven": "no"}]
    info = {"qat_seconds": round(qat_s, 1), "epoch_losses": [round(v, 4) for v in losses], "level": level,
            "train_images": len(y_tr)}
    snn = spikezip_convert(qann, max(ts))
    rows += _curve_rows(f"spikingjelly SpikeZIP-TF ({tag})", lambda x, t: spikezip_outputs(snn, x, t), xs, ys, clf,
                        ts, timer, "STBIF neurons (1 spike/step), TD linear/Q·Kᵀ/A·V; float softmax/LayerNorm")
    for b in sorted({bits, args.bits}):  # the SpikeZIP bit width, and the width of the main rows
        ours = convert(quantize(relu_graph(qann, graph), QuantConfig(bits=b), calib),
                       ConvertConfig(max_spikes_per_step=args.max_spikes[0]))
        rows += _curve_rows(f"spikemfm SNN on the same ReLU weights ({b}-bit PTQ, <={args.max_spikes[0]} spikes/step)",
                            lambda x, t: simulate(ours, x, t).outputs, xs, ys, clf, ts, timer,
                            "neurons, synapses, Q·Kᵀ, A·V; float softmax/LayerNorm")
    return rows, info


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

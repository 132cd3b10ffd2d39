"""Compression tables: mixed vs uniform precision, pruning curves, and what compression does to the SNN.

Table 1 (mixed_vs_uniform): at average budgets of 3–6 bits (weights per parameter and activations per
neuron), uniform QuantConfig(bits=b) vs MixedPrecisionConfig(budget=b) (bits chosen from measured
sensitivity, candidates 2,3,4,5,6,8). tiny CLIP: QANN zero-shot top-1 on Fashion-MNIST test images;
MiniLM: mean cosine of QANN vs FP32 sentence embeddings on real held-out sentences.
Table 2 (pruning): FP32 accuracy / cosine vs fraction of heads or MLP channels removed, with and
without distillation recovery on real training data.
Table 3 (snn_impact, tiny CLIP): uniform 8-bit vs mixed vs pruned + mixed — QANN accuracy, SNN accuracy
at T=16, neurons, spikes per image and T_exact (<=4 spikes per neuron per step).
The tiny CLIP's text tower stays FP32 here (class embeddings from the FP32 MiniLM); only the image
tower is compressed.

Writes results/compression/{mixed_vs_uniform,pruning,snn_impact,bit_report_*}.{json,csv,md} + PNG.
Run: ``python experiments/compression.py`` (``--quick`` for a smoke run).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from spikemfm.convert import (ConvertConfig, MixedPrecisionConfig, PruneConfig, QuantConfig, analyze, distill,
                              prune, quantize)
from spikemfm.snn import convert
from spikemfm.data import load_fashion_mnist, load_sentences
from spikemfm.app.zero_shot import zero_shot_accuracy
from spikemfm.core.io import save_figure, save_table
from spikemfm.models.text import load_minilm
from spikemfm.models.tiny_clip import load_tiny_clip
from spikemfm.app.tiny_clip import calibration_images
from spikemfm.snn import simulate
from spikemfm.core.provenance import add_results_args, results_run

CANDIDATES = (2, 3, 4, 5, 6, 8)


class ClipTask:
    """tiny CLIP image tower: zero-shot top-1 with FP32 class embeddings."""

    name, metric = "tiny-clip", "zero_shot_top1"
    lr = 5e-4  # recovery learning rate (the tower was trained here from scratch)

    def __init__(self, n_test: int) -> None:
        self.model = load_tiny_clip()
        self.tower = self.model.visual
        self.clf = self.model.zero_shot_classifier().double()
        self.test = load_fashion_mnist("test").subset(n_test, seed=0)
        self.calib = calibration_images(512, 128)
        train = load_fashion_mnist("train").subset(4096, seed=7).tensors()[0]
        self.train = list(train.split(128))

    def score(self, fn) -> float:
        return zero_shot_accuracy(lambda x: F.normalize(fn(x).double(), dim=-1) @ self.clf.T, self.test, 500,
                                  progress=False)


class MiniLMTask:
    """all-MiniLM-L6-v2: mean cosine to the FP32 embeddings on held-out real sentences."""

    name, metric = "minilm", "cosine_to_fp32"
    lr = 5e-5  # pretrained BERT: a fine-tuning rate (5e-4 made recovery worse than none)

    def __init__(self, n_eval: int) -> None:
        self.tower = load_minilm()
        s = load_sentences()
        tok = self.tower.tokenize
        self.eval = tok(s[:n_eval])
        self.calib = [tok(s[n_eval + i: n_eval + i + 32]) for i in range(0, 128, 32)]
        self.train = [tok(s[n_eval + 128 + i: n_eval + 128 + i + 32]) for i in range(0, 256, 32)]
        with torch.no_grad():
            self.ref = self.tower(self.eval["input_ids"], self.eval["attention_mask"]).double()

    def score(self, fn) -> float:
        with torch.no_grad():
            return float(F.cosine_similarity(fn(self.eval).double(), self.ref, dim=-1).mean())


def mixed_vs_uniform(task, budgets: list[int], out: Path, sens_batches: int) -> list[dict]:
    t0 = time.time()
    an = analyze(task.tower, MixedPrecisionConfig(budget=max(budgets), candidates=CANDIDATES,
                                                  sensitivity_batches=sens_batches), task.calib, progress=True)
    print(f"{task.name}: sensitivity measured in {time.time() - t0:.0f}s")
    rows = []
    for b in budgets:
        uni = quantize(task.tower, QuantConfig(bits=b), analysis=an)
        mixed = quantize(task.tower, MixedPrecisionConfig(budget=b, candidates=CANDIDATES), analysis=an)
        s = mixed.allocation.summary
        rows.append({"model": task.name, "budget_bits": b, f"uniform_{task.metric}": task.score(uni),
                     f"mixed_{task.metric}": task.score(mixed), "mixed_avg_weight_bits": round(s["avg_weight_bits"], 3),
                     "mixed_avg_act_bits": round(s["avg_act_bits"], 3), "uniform_weight_kB": _wbytes(uni) / 1e3,
                     "mixed_weight_kB": s["weight_bytes"] / 1e3, "mixed_bits_used": _hist(mixed.allocation.bits)})
        save_table(out, f"bit_report_{task.name}_{b}bit", mixed.allocation.rows(), {"budget": b},
                   f"{task.name}: per-layer bits at an average budget of {b} bits", extra={"summary": s})
        print(rows[-1])
    return rows


def _wbytes(qann) -> float:
    return sum(ql.total_bits for ql in qann.qparams.linears.values()) / 8


def _hist(bits: dict) -> str:
    vals = list(bits.values())
    return " ".join(f"{b}b:{vals.count(b)}" for b in sorted(set(vals)))


def pruning(task, ratios: list[float], steps: int, out: Path) -> list[dict]:
    rows = [{"model": task.name, "target": "none", "ratio": 0.0, "recovery": "-",
             task.metric: task.score(lambda x: _tower_out(task, x)), "params": _params(task)}]
    for target in ("heads", "mlp"):
        for r in ratios:
            cfg = PruneConfig(head_ratio=r if target == "heads" else 0.0, mlp_ratio=r if target == "mlp" else 0.0)
            pruned = prune(task.tower, cfg, task.calib)
            base = {"model": task.name, "target": target, "ratio": r}
            rows.append({**base, "recovery": "none", task.metric: task.score(pruned), "params": pruned.num_params()})
            distill(pruned, task.tower, task.train, steps=steps, lr=task.lr)
            rows.append({**base, "recovery": f"distill {steps} steps", task.metric: task.score(pruned),
                         "params": pruned.num_params()})
            print(rows[-2], rows[-1])
    return rows


def _tower_out(task, x):
    if isinstance(task, MiniLMTask):
        return task.tower(x["input_ids"], x["attention_mask"])
    return task.tower(x)


def _params(task) -> int:
    from spikemfm.convert.qann import as_graph

    return _graph_params(as_graph(task.tower))


def _snn_stats(task: ClipTask, qann, spikes: int, timesteps: int, n_images: int) -> dict:
    snn = convert(qann, ConvertConfig(max_spikes_per_step=spikes))
    x_all, y_all = task.test.subset(n_images, seed=1).tensors()
    correct16 = correct_t = total_spikes = 0.0
    t_exact, neurons = 0, 0
    for x, y in zip(x_all.split(100), y_all.split(100)):
        res = simulate(snn, x, timesteps)
        pred = F.normalize(res.outputs, dim=-1) @ task.clf.T
        correct16 += float((pred[min(16, timesteps) - 1].argmax(-1) == y).sum())
        correct_t += float((pred[-1].argmax(-1) == y).sum())
        te = res.t_exact(qann(x))
        t_exact = max(t_exact, te if te is not None else timesteps + 1)
        total_spikes += res.total_spikes()
        neurons = res.total_neurons()
    return {"snn_top1_T16": correct16 / len(y_all), f"snn_top1_T{timesteps}": correct_t / len(y_all),
            "neurons_per_image": neurons, f"spikes_per_image_T{timesteps}": round(total_spikes / len(y_all)),
            "T_exact": t_exact if t_exact <= timesteps else f">{timesteps}"}


def snn_impact(task: ClipTask, args: argparse.Namespace) -> list[dict]:
    pruned = prune(task.tower, PruneConfig(head_ratio=0.25, mlp_ratio=0.5), task.calib)
    distill(pruned, task.tower, task.train, steps=args.steps, lr=task.lr)
    an_full = analyze(task.tower, MixedPrecisionConfig(candidates=CANDIDATES, sensitivity_batches=args.sens_batches),
                      task.calib)
    an_pruned = analyze(pruned, MixedPrecisionConfig(candidates=CANDIDATES, sensitivity_batches=args.sens_batches),
                        task.calib)
    configs = [("uniform 8-bit", task.tower, QuantConfig(bits=8), an_full),
               ("uniform 5-bit", task.tower, QuantConfig(bits=5), an_full),
               ("mixed, 5-bit budget", task.tower, MixedPrecisionConfig(budget=5, candidates=CANDIDATES), an_full),
               ("pruned (25% heads, 50% MLP) + distill + mixed 5-bit", pruned,
                MixedPrecisionConfig(budget=5, candidates=CANDIDATES), an_pruned)]
    rows = []
    for name, model, cfg, an in configs:
        qann = quantize(model, cfg, analysis=an)
        row = {"config": name, "params": _graph_params(qann.graph), "weight_kB": _wbytes(qann) / 1e3,
               "qann_top1": task.score(qann)}
        row.update(_snn_stats(task, qann, args.snn_spikes, args.snn_T, args.n_snn))
        rows.append(row)
        print(row)
    return rows


def _graph_params(graph) -> int:
    from spikemfm.convert import GraphModel

    return GraphModel(graph).num_params()


def plot_pruning(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        sel = [r for r in rows if r["model"] == model]
        metric = next(k for k in sel[0] if k in ("zero_shot_top1", "cosine_to_fp32"))
        base = sel[0][metric]
        for target in ("heads", "mlp"):
            for rec, style in (("none", "--"), ("distill", "-")):
                pts = [(0.0, base)] + [(r["ratio"], r[metric]) for r in sel
                                       if r["target"] == target and r["recovery"].startswith(rec)]
                ax.plot(*zip(*pts), style, marker="o", label=f"{target}, {'recovered' if rec == 'distill' else 'no recovery'}")
        ax.set_xlabel("fraction removed")
        ax.set_ylabel(metric)
        ax.set_title(model)
        ax.legend(fontsize=7)
    save_figure(fig, out / "pruning_curves.png")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--n-sentences", type=int, default=64)
    p.add_argument("--budgets", type=int, nargs="+", default=[3, 4, 5, 6])
    p.add_argument("--ratios", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    p.add_argument("--steps", type=int, default=150, help="distillation steps of the recovery")
    p.add_argument("--sens-batches", type=int, default=1)
    p.add_argument("--n-snn", type=int, default=200)
    p.add_argument("--snn-T", type=int, default=64)
    p.add_argument("--snn-spikes", type=int, default=4)
    p.add_argument("--only", choices=["tiny-clip", "minilm", "both"], default="both")
    p.add_argument("--tables", nargs="+", choices=["mixed", "pruning", "snn"], default=["mixed", "pruning", "snn"])
    p.add_argument("--quick", action="store_true", help="small smoke run")
    p.add_argument("--out", default="results/compression")
    add_results_args(p)
    args = p.parse_args()
    results_run(args.allow_dirty)
    if args.quick:
        args.n_test, args.n_sentences, args.budgets, args.ratios, args.steps = 200, 16, [4], [0.5], 5
        args.n_snn, args.snn_T = 20, 8
    torch.manual_seed(0)
    out = Path(args.out)
    tasks = []
    if args.only in ("tiny-clip", "both"):
        tasks.append(ClipTask(args.n_test))
    if args.only in ("minilm", "both"):
        tasks.append(MiniLMTask(args.n_sentences))
    tag = "" if args.only == "both" else f"_{args.only}"
    if "mixed" in args.tables:
        rows = [r for task in tasks for r in mixed_vs_uniform(task, args.budgets, out, args.sens_batches)]
        print(save_table(out, f"mixed_vs_uniform{tag}", rows, vars(args),
                         "Mixed vs uniform precision at the same average bits"))
    if "pruning" in args.tables:
        rows = [r for task in tasks for r in pruning(task, args.ratios, args.steps, out)]
        print(save_table(out, f"pruning{tag}", rows, vars(args), "Pruning curves, with and without distillation recovery"))
        plot_pruning(rows, out if not tag else out / tag.strip("_"))
    if "snn" in args.tables and tasks and isinstance(tasks[0], ClipTask):
        print(save_table(out, "snn_impact", snn_impact(tasks[0], args), vars(args),
                         f"tiny CLIP image tower: compression and the SNN (<= {args.snn_spikes} spikes/step, "
                         f"{args.n_snn} test images; QANN top-1 on {args.n_test})"))


if __name__ == "__main__":
    main()

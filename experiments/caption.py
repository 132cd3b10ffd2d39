"""A spiking multimodal model that sees and writes: the bundled tiny-CLIP image tower → a learned projector → k
visual tokens → SmolLM2-135M, which completes "A photo of a" with the garment's name.

Protocol: the projector alone is trained (:mod:`spikemfm.lm.caption`) on ``--train`` Fashion-MNIST training
images, the kept projector chosen by its loss on ``--val`` other training images (never the test split); the
test split is read once per row: the share of ``--test`` test images whose description names the right class,
for FP32 (float tower and LM), QANN (8-bit tower and 8-bit LM, SmoothQuant α = 0.5, LM calibrated on code) and SNN
(both spiking, graded, every pass settled: its description must equal the QANN's — checked on ``--snn-images``
images). Energy per description on Loihi 2 for ``--energy-images`` images: the tower's SNN operations and the
LM's priced passes (prefill of the k visual tokens and the prompt included; operations and the system model).
Rows per visual-token count k ∈ ``--k`` and tower resolution r ∈ ``--resolutions`` (images area-averaged to
r × r, the trained tower's position embeddings resampled to (r / 4)² patches — :func:`tower_at`; a projector
trained per row). Writes results/caption/{json,csv,md,png}.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import spikemfm
from spikemfm.core.io import output_set, save_figure, save_table
from spikemfm.core.provenance import add_results_args, results_run
from spikemfm.data import load_fashion_mnist
from spikemfm.energy import estimate_energy, load_profile
from spikemfm.lm.build import build_paths
from spikemfm.lm.caption import TrainConfig, describe, named_class, train_projector
from spikemfm.lm.energy import Priced
from spikemfm.lm.runners import FloatRunner, QANNRunner, SNNRunner
from spikemfm.models.tiny_clip import PROMPT_CLASSNAMES, downsample
from spikemfm.app.caption_job import quantized_tower


def towers(size: int):
    """(float tower, 8-bit QANN tower, its graded SNN) seeing ``size`` × ``size`` images."""
    visual, qann = quantized_tower(size, 8)
    return visual, qann, spikemfm.convert(qann, spikemfm.ConvertConfig(max_spikes_per_step=None))


def split_train(n_train: int, n_val: int):
    """Disjoint training and validation images, both from the training split."""
    x, y = load_fashion_mnist("train").subset(n_train + n_val, seed=1).tensors()
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def accuracy(texts: list[str], labels: torch.Tensor) -> float:
    return sum(named_class(t, PROMPT_CLASSNAMES) == int(y) for t, y in zip(texts, labels)) / len(labels)


def run_k(k: int, size: int, lm: dict, tok, tw, data: dict, args) -> dict:
    visual, qtower, stower = tw
    proj, hist = train_projector(lm["fp32"], tok, data["feats"], data["caps"], data["val_feats"], data["val_caps"],
                                 TrainConfig(k=k, steps=args.steps), progress=lambda m: print(" ", m, flush=True))
    x, y = data["test"]
    row = {"k": k, "resolution": size, "patches": (size // 4) ** 2, "val_loss": min(h["val_loss"] for h in hist),
           "test_images": len(y)}
    with torch.no_grad():
        f_vis, q_vis = proj(visual(x)), proj(qtower(x))
    text = lambda g: tok.decode(g.new_tokens[0], skip_special_tokens=True)  # noqa: E731
    fp = [text(describe(lm["fp32"], FloatRunner(lm["fp32"]), f_vis[i:i + 1], tok)) for i in range(len(y))]
    qa = [describe(lm["qann"], QANNRunner(lm["qann"]), q_vis[i:i + 1], tok) for i in range(len(y))]
    row.update({"fp32_accuracy": accuracy(fp, y), "qann_accuracy": accuracy([text(g) for g in qa], y),
                "example_fp32": fp[0], "example_qann": text(qa[0])})
    same = 0
    for i in range(args.snn_images):
        sim = spikemfm.simulate(stower, x[i:i + 1], 64, adaptive=True)
        tower_equal = torch.equal(sim.outputs[-1], qtower(x[i:i + 1]))
        g = describe(lm["snn"], SNNRunner(lm["snn"], "settle"), proj(sim.outputs[-1]).detach(), tok)
        same += tower_equal and g.exact and torch.equal(g.tokens, qa[i].tokens)
    row["snn_equals_qann"] = f"{same}/{args.snn_images}"
    row.update(energy(k, proj, stower, lm, tok, x[:args.energy_images]))
    print(f"k={k} r={size}: FP32 {row['fp32_accuracy']:.3f}  QANN {row['qann_accuracy']:.3f}  SNN == QANN {same}/"
          f"{args.snn_images}  Loihi 2 {row['loihi2_system_nj']:.4g} nJ per description", flush=True)
    return row


def energy(k: int, proj, stower, lm: dict, tok, images: torch.Tensor) -> dict:
    """Mean per description: the tower's SNN operations and the LM's priced passes, on Loihi 2."""
    prof = load_profile("loihi2")
    tower = lm_ops = system = 0.0
    for i in range(len(images)):
        sim = spikemfm.simulate(stower, images[i:i + 1], 64, adaptive=True)
        tower += estimate_energy(sim, prof).snn_total / 1e3
        priced = Priced(lm["snn"], [prof], prof, price_prefill=True)
        describe(lm["snn"], priced.runner(), proj(sim.outputs[-1]).detach(), tok)
        lm_ops, system = lm_ops + priced.last.totals["loihi2_nj"], system + priced.last.totals["system_nj"]
    n = len(images)
    return {"tower_loihi2_nj": round(tower / n, 1), "lm_loihi2_ops_nj": round(lm_ops / n, 1),
            "loihi2_system_nj": round(system / n + tower / n, 1)}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("fp32_accuracy", "FP32"), ("qann_accuracy", "QANN (= SNN)")):
        ax.plot([r["loihi2_system_nj"] / 1e6 for r in rows], [r[key] for r in rows], "o-", label=label)
    for r in rows:
        ax.annotate(f"k={r['k']} r={r['resolution']}", (r["loihi2_system_nj"] / 1e6, r["qann_accuracy"]), fontsize=7)
    ax.set_xlabel("Loihi 2 energy per description (mJ, system model)")
    ax.set_ylabel("share naming the right class (test)")
    ax.set_title("tiny-CLIP tower -> projector -> SmolLM2, Fashion-MNIST", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--resolutions", type=int, nargs="+", default=[28, 16], help="tower input sizes (multiples of 4)")
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--val", type=int, default=128)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--snn-images", type=int, default=10)
    ap.add_argument("--energy-images", type=int, default=2)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="results/caption")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    paths, tok = build_paths(args.model, ("fp32", "qann", "snn"), 8)
    (xt, yt), (xv, yv) = split_train(args.train, args.val)
    xs, ys = load_fashion_mnist("test").subset(args.test, seed=0).tensors()
    rows = []
    for size in args.resolutions:
        tw = towers(size)
        with torch.no_grad():
            data = {"feats": tw[0](downsample(xt, size)), "caps": [" " + PROMPT_CLASSNAMES[int(c)] for c in yt],
                    "val_feats": tw[0](downsample(xv, size)),
                    "val_caps": [" " + PROMPT_CLASSNAMES[int(c)] for c in yv], "test": (downsample(xs, size), ys)}
        rows += [run_k(k, size, paths, tok, tw, data, args) for k in args.k]
    with output_set(Path(args.out)) as stage:
        save_table(stage, "caption", rows, vars(args), f"{args.model} + tiny-CLIP tower: descriptions naming the "
                   "right Fashion-MNIST class (test), energy per description on Loihi 2 (nJ)")
        plot(rows, stage / "caption.png")
    print(f"wrote {args.out}/caption.{{json,csv,md,png}}")


if __name__ == "__main__":
    main()

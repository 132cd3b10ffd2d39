"""Accuracy of the converted SNN vs T: tiny-CLIP zero-shot on Fashion-MNIST and MiniLM embeddings.

Table 1: the bundled tiny CLIP, zero-shot on the Fashion-MNIST test split — FP32, QANN and SNN at
each T, with *both towers spiking* (class embeddings from the spiking MiniLM text tower at the same T),
plus the fraction of images whose SNN prediction already equals the QANN's (time to correct output).
Table 2: all-MiniLM-L6-v2 on real sentences (Debian fortunes-min) — cosine similarity of the SNN
sentence embedding to the FP32 one at each T.

Writes results/conversion_accuracy/{tiny_clip,minilm}.{json,csv,md} and accuracy_vs_T.png.
Run: ``python experiments/conversion_accuracy.py`` (add ``--n-test 1000`` for a quick run;
``--only minilm --n-sentences 64`` for the text table alone).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from spikemfm.convert import ConvertConfig, QuantConfig, parse_max_spikes, quantize
from spikemfm.snn import convert
from spikemfm.data import load_fashion_mnist, load_sentences
from spikemfm.app.zero_shot import zero_shot_accuracy
from spikemfm.core.io import save_figure, save_table
from spikemfm.models.tiny_clip import load_tiny_clip
from spikemfm.app.tiny_clip import (calibration_images, convert_tiny_clip, qann_classifier, qann_zero_shot,
                               snn_classifier, snn_zero_shot_curve)
from spikemfm.snn import simulate
from spikemfm.core.provenance import add_results_args, results_run


def tiny_clip_rows(args: argparse.Namespace) -> list[dict]:
    model = load_tiny_clip()
    test = load_fashion_mnist("test")
    if args.n_test < len(test):
        test = test.subset(args.n_test, seed=0)
    clf = model.zero_shot_classifier()
    fp32 = zero_shot_accuracy(lambda x: model(x, clf), test, desc="FP32")
    rows = [{"model": "tiny-clip", "bits": 32, "max_spikes_per_step": "-", "T": "-", "accuracy": fp32,
             "qann_accuracy": fp32, "agree_with_qann": 1.0, "spikes_per_image": 0.0}]
    calib = calibration_images()
    for bits in args.bits:
        for ms in args.max_spikes:
            t0 = time.time()
            s = convert_tiny_clip(model, QuantConfig(bits=bits), ConvertConfig(max_spikes_per_step=parse_max_spikes(ms)), calib)
            q_clf = qann_classifier(s, model)
            q_acc = qann_zero_shot(s, q_clf, test)
            curve = snn_zero_shot_curve(s, snn_classifier(s, model, max(args.timesteps)), q_clf, test,
                                        max(args.timesteps), args.batch_size, desc=f"SNN {bits}b B={ms}")
            for t in args.timesteps:
                rows.append({"model": "tiny-clip", "bits": bits, "max_spikes_per_step": ms, "T": t,
                             "accuracy": float(curve.accuracy[t - 1]), "qann_accuracy": q_acc,
                             "agree_with_qann": float(curve.agreement[t - 1]),
                             "spikes_per_image": round(curve.spikes_per_image, 1)})
            print(f"{bits}-bit B={ms}: QANN {q_acc:.4f}, SNN@T={max(args.timesteps)} "
                  f"{float(curve.accuracy[-1]):.4f} ({time.time() - t0:.0f}s)")
    return rows


def minilm_rows(args: argparse.Namespace) -> list[dict]:
    from spikemfm.models.text import load_minilm

    enc = load_minilm()
    sentences = load_sentences()
    evals, calib = sentences[: args.n_sentences], sentences[args.n_sentences: args.n_sentences + 128]
    tok = enc.tokenize(evals)
    calib_batches = [enc.tokenize(calib[i:i + 32]) for i in range(0, len(calib), 32)]
    with torch.no_grad():
        ref = enc(tok["input_ids"], tok["attention_mask"]).double()
    rows = []
    for bits in args.bits:
        qann = quantize(enc, QuantConfig(bits=bits), calib_batches)
        q_cos = float(F.cosine_similarity(qann(tok), ref).mean())
        for ms in args.max_spikes:
            res = simulate(convert(qann, ConvertConfig(max_spikes_per_step=parse_max_spikes(ms))), tok, max(args.timesteps))
            for t in args.timesteps:
                cos = F.cosine_similarity(res.outputs[t - 1], ref, dim=-1)
                rows.append({"model": "all-MiniLM-L6-v2", "bits": bits, "max_spikes_per_step": ms, "T": t,
                             "cosine_to_fp32_mean": float(cos.mean()), "cosine_to_fp32_min": float(cos.min()),
                             "qann_cosine_to_fp32": q_cos})
            print(f"MiniLM {bits}-bit B={ms}: QANN cos {q_cos:.4f}, SNN cos@T={max(args.timesteps)} "
                  f"{rows[-1]['cosine_to_fp32_mean']:.4f}")
    return rows


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    fp32 = rows[0]["accuracy"]
    ax.axhline(fp32, color="k", ls="--", label=f"FP32 {fp32:.3f}")
    for key in sorted({(r["bits"], r["max_spikes_per_step"]) for r in rows[1:]}):
        pts = [r for r in rows[1:] if (r["bits"], r["max_spikes_per_step"]) == key]
        ax.plot([r["T"] for r in pts], [r["accuracy"] for r in pts], marker="o",
                label=f"SNN {key[0]}-bit, ≤{key[1]} spikes/step (QANN {pts[0]['qann_accuracy']:.3f})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("time steps T")
    ax.set_ylabel("zero-shot top-1 (Fashion-MNIST test)")
    ax.set_title("tiny-clip-fmnist: both towers spiking")
    ax.legend(fontsize=7)
    save_figure(fig, out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--n-sentences", type=int, default=200)
    p.add_argument("--bits", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--max-spikes", nargs="+", default=["1", "4"])
    p.add_argument("--timesteps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--out", default="results/conversion_accuracy")
    p.add_argument("--only", choices=["tiny-clip", "minilm", "both"], default="both", help="which table(s)")
    add_results_args(p)
    args = p.parse_args()
    results_run(args.allow_dirty)
    out = Path(args.out)
    if args.only in ("tiny-clip", "both"):
        rows = tiny_clip_rows(args)
        print(save_table(out, "tiny_clip", rows, vars(args),
                         f"tiny-clip-fmnist zero-shot, Fashion-MNIST test ({args.n_test} images), both towers spiking"))
        plot(rows, out / "accuracy_vs_T.png")
    if args.only in ("minilm", "both"):
        print(save_table(out, "minilm", minilm_rows(args), vars(args),
                         f"all-MiniLM-L6-v2 on {args.n_sentences} real sentences: SNN vs FP32 cosine"))


if __name__ == "__main__":
    main()

"""Low-bit QAT against post-training quantization: the tiny CLIP image tower (zero-shot accuracy on the
Fashion-MNIST test split, FP32 class embeddings) and all-MiniLM-L6-v2 (cosine to FP32 on held-out sentences).

QAT (:func:`spikemfm.qat`) trains on real training data only (Fashion-MNIST training images / the
even-numbered sentences), distilling from the float tower; every QAT QANN is converted and checked to
accumulate exactly to itself (graded spikes, T=2, on the first test inputs). Writes
``results/qat/qat.{json,csv,md}``.

Run: ``python experiments/qat.py`` (defaults: the issue's goals — image 3 and 2 bits, MiniLM 4 bits).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from spikemfm.app.data import DataSource, _sentences
from spikemfm.app.tiny_clip import calibration_images, classifier_from_embeddings, prompts
from spikemfm.convert import ConvertConfig, QATConfig, QuantConfig, qat, quantize
from spikemfm.snn import convert
from spikemfm.data import load_fashion_mnist
from spikemfm.core.io import output_set, save_table
from spikemfm.models.text import load_minilm
from spikemfm.models.tiny_clip import load_tiny_clip
from spikemfm.snn import simulate
from spikemfm.core.provenance import add_results_args, results_run


def _exact(qann, x) -> bool:
    out = simulate(convert(qann, ConvertConfig(max_spikes_per_step=None)), x, 2).outputs[-1]
    return bool(torch.equal(out, qann(x)))


def image_rows(bits: list[int], args) -> list[dict]:
    model = load_tiny_clip()
    test = load_fashion_mnist("test")
    x, y = (test.subset(args.images, seed=0) if args.images < len(test) else test).tensors()
    with torch.no_grad():
        clf = classifier_from_embeddings(model.text.encode(prompts())).double()

        def acc(f) -> float:
            return sum(float((F.normalize(f(xb).double(), -1) @ clf.T).argmax(-1).eq(yb).sum())
                       for xb, yb in zip(x.split(500), y.split(500))) / len(y)
        fp32 = acc(model.visual)
    calib = calibration_images()
    train = calibration_images(args.train_images, args.batch, seed=1)
    rows = []
    for b in bits:
        ptq = quantize(model.visual, QuantConfig(bits=b), calib)
        t0 = time.perf_counter()
        trained = qat(ptq, train, config=QATConfig(steps=args.steps, lr=args.lr, step_lr=args.step_lr,
                                                   schedule=args.schedule), progress=True)
        rows.append({"tower": "tiny-clip image", "bits": b, "metric": "zero-shot top-1", "inputs": len(y),
                     "fp32": fp32, "ptq": acc(ptq), "qat": acc(trained), "qat_steps": args.steps,
                     "qat_s": round(time.perf_counter() - t0, 1), "snn_equals_qat_qann": _exact(trained, x[:32])})
        print(rows[-1], flush=True)
    return rows


def text_rows(bits: list[int], args) -> list[dict]:
    text = load_minilm()
    held_out, _ = _sentences(DataSource(), "test", args.sentences)
    train, _ = _sentences(DataSource(), "train", 10 ** 6)
    batches = [text.tokenize(train[i:i + 32]) for i in range(0, len(train), 32)]
    tok = text.tokenize(held_out)
    with torch.no_grad():
        ref = text.pooled(tok["input_ids"], tok["attention_mask"]).double()

    def cos(q) -> float:
        return float(F.cosine_similarity(q(tok).double(), ref, dim=-1).mean())
    rows = []
    for b in bits:
        overrides = tuple((glob, int(bits)) for glob, bits in (o.rsplit("=", 1) for o in args.text_overrides))
        ptq = quantize(text, QuantConfig(bits=b, act_overrides=overrides), batches[:4])
        t0 = time.perf_counter()
        trained = qat(ptq, batches, config=QATConfig(steps=args.text_steps, lr=args.text_lr, step_lr=args.step_lr,
                                               schedule=args.schedule),
                      progress=True)
        few = {k: v[:4] for k, v in tok.items()}
        rows.append({"tower": "all-MiniLM-L6-v2", "bits": b if not overrides else f"{b} ({' '.join(args.text_overrides)})",
                     "metric": "cosine to FP32", "inputs": len(held_out),
                     "fp32": 1.0, "ptq": cos(ptq), "qat": cos(trained), "qat_steps": args.text_steps,
                     "qat_s": round(time.perf_counter() - t0, 1), "snn_equals_qat_qann": _exact(trained, few)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image-bits", type=int, nargs="*", default=[3, 2])
    ap.add_argument("--text-bits", type=int, nargs="*", default=[4])
    ap.add_argument("--images", type=int, default=10000, help="test images evaluated (10000: the full split)")
    ap.add_argument("--train-images", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--step-lr", type=float, default=1e-2)
    ap.add_argument("--sentences", type=int, default=128)
    ap.add_argument("--text-steps", type=int, default=300)
    ap.add_argument("--text-lr", type=float, default=5e-5)
    ap.add_argument("--text-overrides", nargs="*", default=[], metavar="GLOB=BITS",
                    help="activation points of the text tower at other widths, e.g. '*.in=8' (its LayerNorm outputs)")
    ap.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    ap.add_argument("--out", default="results/qat")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    torch.manual_seed(0)
    rows = image_rows(args.image_bits, args) + text_rows(args.text_bits, args)
    with output_set(args.out) as stage:
        md = save_table(stage, "qat", rows, vars(args), "QAT vs post-training quantization (spikemfm.qat)")
    print(md)


if __name__ == "__main__":
    main()

"""Which activation points keep all-MiniLM-L6-v2 from 4 bits: post-training quantization with one role of points at
another width, the rest uniform. It is the choice of the text tower's width overrides, so it is scored on the
validation sentences (``--split val``: every 5th even-numbered line, ``docs/validation.md``), never on the test ones.

Two sweeps over the roles of the quantization points (``in``: the LayerNorm outputs that feed attention and the MLP;
``q``/``k``/``v``/``probs``/``ctx``: attention; ``hidden``/``act``: the MLP), the real MiniLM on real sentences of
the chosen split, calibrated on the fit sentences, cosine of each QANN's sentence embedding to the FP32 embedding: (a) every point at
4 bits but one role at 8; (b) every point at 8 bits but one role at 4. Weights at the activations' width.

Writes ``results/text_bit_sensitivity/sensitivity.{json,csv,md}``. Run: ``python experiments/text_bit_sensitivity.py``
(~3 min on 2 cores).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from spikemfm.app.data import DataSource, sentence_split
from spikemfm.convert import QuantConfig, quantize
from spikemfm.core.io import output_set, save_table
from spikemfm.models.text import load_minilm
from spikemfm.core.provenance import add_results_args, results_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=128, help="real sentences scored (at most the split's)")
    ap.add_argument("--split", choices=["val", "test"], default="val", help="val: where choices are made")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--out", default="results/text_bit_sensitivity")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    text = load_minilm(args.tokens)
    held_out, _ = sentence_split(DataSource(), args.split, args.sentences)
    train, _ = sentence_split(DataSource(), "fit", 128)
    tok = text.tokenize(held_out)
    calib = [text.tokenize(train[i:i + 32]) for i in range(0, len(train), 32)]
    with torch.no_grad():
        ref = text.pooled(tok["input_ids"], tok["attention_mask"]).double()

    def cosine(cfg: QuantConfig) -> float:
        qann = quantize(text, cfg, calib)
        with torch.no_grad():
            return round(float(F.cosine_similarity(qann(tok).double(), ref, dim=-1).mean()), 4)

    roles = sorted({p.rsplit(".", 1)[-1] for p in quantize(text, QuantConfig(bits=8), calib[:1]).qparams.quants})
    rows = [{"base_bits": b, "role": "(none)", "role_bits": b, "cosine_to_fp32": cosine(QuantConfig(bits=b))}
            for b in (4, 8)]
    for base, other in ((4, 8), (8, 4)):
        for role in roles:
            cfg = QuantConfig(bits=base, act_overrides=((f"*.{role}", other),),
                              attn_bits=other if role == "probs" else base)
            rows.append({"base_bits": base, "role": role, "role_bits": other, "cosine_to_fp32": cosine(cfg)})
            print(f"{base}-bit, {role:>6} at {other}: cosine {rows[-1]['cosine_to_fp32']}", flush=True)
    with output_set(Path(args.out)) as stage:
        save_table(stage, "sensitivity", rows, vars(args), "all-MiniLM-L6-v2 PTQ: one role of activation points "
                   f"at another width (cosine to FP32 on {len(held_out)} {args.split} sentences)")
    print(f"wrote {args.out}/sensitivity.{{json,csv,md}}")


if __name__ == "__main__":
    main()

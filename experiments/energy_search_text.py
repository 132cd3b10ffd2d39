"""The energy search for the text tower: all-MiniLM-L6-v2 (real weights) on held-out real sentences, scored by the
cosine of its sentence embedding to the FP32 model's embedding of the *full* sentence (up to 64 tokens), over bits,
spike modes, T (fixed and adaptive) and token count (sentences truncated to 16 / 32 / 64 tokens: the text side of
the seeds' resolution co-optimisation — fewer tokens, less work, a less faithful embedding).

Each QANN (calibrated on the even-numbered sentences at its own token count) is converted per spike mode and
simulated once, adaptively, to the largest T (its first t steps are the fixed-T run of t). Dense rows: the FP32
model and each QANN run densely at its width, at its token count. Pareto fronts and the best rows per profile as
in ``experiments/energy_search.py`` (accuracy = mean cosine here).

Writes ``results/energy_search_text/pareto.{json,csv,md,png}`` and ``best.{json,csv,md}``.

Run: ``python experiments/energy_search_text.py`` (~10 min on 2 cores).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from spikemfm.app.data import DataSource, sentence_split
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.energy import available_profiles
from spikemfm.core.io import output_set, save_table
from spikemfm.models.text import load_minilm
from spikemfm.snn import simulate
from spikemfm.core.provenance import add_results_args, results_run

from energy_search import _dense_rows, save_search, snn_rows


def _cos(emb: torch.Tensor, ref: torch.Tensor) -> float:
    return float(F.cosine_similarity(emb.double(), ref, dim=-1).mean())


def matched_rows(rows: list[dict], tolerance: float = 0.01) -> list[dict]:
    """Per profile, bits and token count: the dense QANN and the cheapest SNN of the same QANN within
    ``tolerance`` cosine of it, and their energy ratio."""
    out = []
    for d in (r for r in rows if r["path"] == "dense" and "bits" in r["config"] and r["energy_nj"]):
        same = [r for r in rows if r["path"] == "snn" and r["profile"] == d["profile"] and r["energy_nj"]
                and (r["config"]["bits"], r["config"]["tokens"]) == (d["config"]["bits"], d["config"]["tokens"])
                and r["accuracy"] >= d["accuracy"] - tolerance]
        snn = min(same, key=lambda r: r["energy_nj"], default=None)
        out.append({"profile": d["profile"], "bits": d["config"]["bits"], "tokens": d["config"]["tokens"],
                    "dense_cosine": d["accuracy"], "dense_nJ": d["energy_nj"],
                    "snn": None if snn is None else f"{snn['config']['spikes']} {snn['config']['T']}",
                    "snn_cosine": None if snn is None else snn["accuracy"],
                    "snn_nJ": None if snn is None else snn["energy_nj"],
                    "snn_spike_rate": None if snn is None else snn["spike_rate"],
                    "snn/dense": None if snn is None else round(snn["energy_nj"] / d["energy_nj"], 2)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=64, help="held-out (odd-numbered) real sentences")
    ap.add_argument("--bits", type=int, nargs="+", default=[4, 6, 8])
    ap.add_argument("--tokens", type=int, nargs="+", default=[16, 32, 64], help="max tokens per sentence")
    ap.add_argument("--timesteps", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--profiles", nargs="+", default=available_profiles())
    ap.add_argument("--out", default="results/energy_search_text")
    ap.add_argument("--tables-only", action="store_true",
                    help="rewrite matched.* from an existing OUT/pareto.json without simulating")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    if args.tables_only:
        saved = json.loads((Path(args.out) / "pareto.json").read_text())
        _save_matched(saved["rows"], saved["config"], Path(args.out))
        return
    held_out, _ = sentence_split(DataSource(), "test", args.sentences)
    calib_text, _ = sentence_split(DataSource(), "train", 128)
    full = load_minilm(max(args.tokens))
    with torch.no_grad():
        t = full.tokenize(held_out)
        ref = full.pooled(t["input_ids"], t["attention_mask"]).double()  # FP32 embedding of the whole sentence
    rows: list[dict] = []
    for n in tqdm(args.tokens, desc="token counts"):
        text = load_minilm(n)
        tok = text.tokenize(held_out)
        calib = [text.tokenize(calib_text[i:i + 32]) for i in range(0, len(calib_text), 32)]
        with torch.no_grad():
            fp32 = _cos(text.pooled(tok["input_ids"], tok["attention_mask"]), ref)
        for b in args.bits:
            qann = quantize(text, QuantConfig(bits=b), calib)
            cfg = {"bits": b, "tokens": n}
            with torch.no_grad():
                q_cos = _cos(qann(tok), ref)
            rows += snn_rows(qann, cfg, tok, lambda out: _cos(out, ref), args.timesteps, args.profiles)
            probe = simulate(convert(qann, ConvertConfig(None)), {k: v[:8] for k, v in tok.items()}, 1)
            rows += _dense_rows(probe, q_cos, cfg, b, args.profiles)
            if b == max(args.bits):
                rows += _dense_rows(probe, fp32, {"fp32": True, "tokens": n}, 32, args.profiles)
    title = (f"all-MiniLM-L6-v2, {len(held_out)} held-out sentences, cosine to the FP32 full-sentence embedding: "
             "SNN and dense paths per profile")
    save_search(rows, vars(args), Path(args.out), title, "0.01 cosine of the best dense cosine",
                ylabel="cosine to FP32 (full sentence)", xlabel="energy per sentence (nJ)")
    _save_matched(rows, vars(args), Path(args.out))


def _save_matched(rows: list[dict], config: dict, out: Path) -> None:
    with output_set(out) as stage:
        print(save_table(stage, "matched", matched_rows(rows), config, "per QANN (bits, tokens): its dense run and "
                         "the cheapest SNN of it within 0.01 cosine"))


if __name__ == "__main__":
    main()

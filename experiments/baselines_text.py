"""Baselines on the text tower: all-MiniLM-L6-v2 (the real pretrained BERT) on real sentences, one run.

Rows: int8 dense QANN, spikemfm's SNN (8-bit, <= --max-spikes spikes per neuron per step, and graded), and
the naive rate-coded conversion (unsigned IF neurons) at each T. Metrics against the FP32 model on the
same held-out sentences (Debian fortunes-min): mean / min cosine of the sentence embeddings, and how often
a sentence's nearest neighbour among the others is the FP32 one (a retrieval-level check). Time: one
batch of the sentences, next to T FP32 forwards. spikingjelly's STA and SpikeZIP-TF recipes are not run
here: STA's step-mode backend takes ``nn.MultiheadAttention`` without the padding mask a BERT batch needs,
and SpikeZIP-TF's RoBERTa branch needs a SpikeZIP-quantized, QAT-trained RoBERTa (not MiniLM).
Writes results/baselines/baselines_text.{json,csv,md} and text_cosine_vs_T.png.

Run: ``python experiments/baselines_text.py``
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from spikemfm.baselines import naive_unsigned
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.data import load_sentences
from spikemfm.core.io import save_figure, save_table
from spikemfm.models.text import load_minilm
from spikemfm.snn import simulate
from spikemfm.core.timing import best_time
from spikemfm.core.provenance import add_results_args, results_run


def _neighbours(emb: torch.Tensor) -> torch.Tensor:
    sim = F.normalize(emb.double(), dim=-1) @ F.normalize(emb.double(), dim=-1).T
    return sim.fill_diagonal_(-2).argmax(-1)


def _metrics(emb: torch.Tensor, ref: torch.Tensor, ref_nn: torch.Tensor) -> dict:
    cos = F.cosine_similarity(emb.double(), ref, dim=-1)
    return {"cosine_mean": round(float(cos.mean()), 4), "cosine_min": round(float(cos.min()), 4),
            "neighbour_agreement": round(float((_neighbours(emb) == ref_nn).double().mean()), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-sentences", type=int, default=128)
    p.add_argument("--timesteps", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--max-spikes", type=int, default=16)
    p.add_argument("--out", default="results/baselines")
    add_results_args(p)
    args = p.parse_args()
    results_run(args.allow_dirty)
    enc = load_minilm()
    sentences = load_sentences()
    evals, calib = sentences[: args.n_sentences], sentences[args.n_sentences: args.n_sentences + 128]
    tok = enc.tokenize(evals)
    calib_batches = [enc.tokenize(calib[i:i + 32]) for i in range(0, len(calib), 32)]
    def fp32best_time() -> float:
        with torch.no_grad():
            return best_time(lambda: enc(tok["input_ids"], tok["attention_mask"]), 3)

    with torch.no_grad():
        ref = enc(tok["input_ids"], tok["attention_mask"]).double()
    t_fp32 = fp32best_time()
    ref_nn = _neighbours(ref)
    qann = quantize(enc, QuantConfig(bits=args.bits), calib_batches)
    t_q = best_time(lambda: qann(tok))
    t_fp32 = min(t_fp32, fp32best_time())
    rows = [{"method": "FP32 ANN", "T": "-", **_metrics(ref, ref, ref_nn), "sim_s": round(t_fp32, 4),
             "fp32_s": round(t_fp32, 4), "sim_over_T_x_fp32": 1.0},
            {"method": f"int{args.bits} dense QANN", "T": "-", **_metrics(qann(tok), ref, ref_nn),
             "sim_s": round(t_q, 4), "fp32_s": round(t_fp32, 4), "sim_over_T_x_fp32": round(t_q / t_fp32, 2)}]
    ours = convert(qann, ConvertConfig(max_spikes_per_step=args.max_spikes))
    variants = [(f"spikemfm SNN ({args.bits}-bit, <={args.max_spikes} spikes/step)", ours),
                (f"spikemfm SNN ({args.bits}-bit, graded spikes)", convert(qann, ConvertConfig(None))),
                (f"naive rate-coded (unsigned IF, {args.bits}-bit, <={args.max_spikes} spikes/step)",
                 naive_unsigned(ours))]
    for name, snn in variants:
        res = simulate(snn, tok, max(args.timesteps))
        for t in args.timesteps:
            before = fp32best_time()  # FP32 re-timed next to each row: the machine's speed drifts over a run
            sim_s = best_time(lambda: simulate(snn, tok, t), 1)
            t_fp32 = min(before, fp32best_time())
            rows.append({"method": name, "T": t, **_metrics(res.outputs[t - 1], ref, ref_nn),
                         "sim_s": round(sim_s, 4), "fp32_s": round(t_fp32, 4),
                         "sim_over_T_x_fp32": round(sim_s / (t * t_fp32), 2)})
        print(f"{name}: cosine at T={max(args.timesteps)} {rows[-1]['cosine_mean']}")
    print(save_table(Path(args.out), "baselines_text", rows, vars(args),
                     f"Baselines on all-MiniLM-L6-v2: {args.n_sentences} real sentences, agreement with FP32 "
                     f"(cosine, nearest-neighbour) and simulation time of one batch, one run"))
    plot(rows, Path(args.out) / "text_cosine_vs_T.png")


def plot(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for method in dict.fromkeys(r["method"] for r in rows if r["T"] != "-"):
        sel = [r for r in rows if r["method"] == method]
        ax.plot([r["T"] for r in sel], [r["cosine_mean"] for r in sel], marker="o", label=method)
    for r in rows:
        if r["T"] == "-" and r["method"] != "FP32 ANN":
            ax.axhline(r["cosine_mean"], ls="--", lw=0.8, color="gray", label=r["method"])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("T")
    ax.set_ylabel("mean cosine to FP32 embedding")
    ax.legend(fontsize=6)
    save_figure(fig, png)
    plt.close(fig)


if __name__ == "__main__":
    main()

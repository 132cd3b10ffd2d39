"""SmolLM2-135M on real code: perplexity of FP32 and QANN configurations, the configuration chosen on validation.

Protocol: calibration windows from the standard library's calibration split; every configuration (bits, SmoothQuant
alpha) scored on the validation split; the best 8-bit and the best 6-bit configuration (by validation perplexity)
then read the test split once, beside FP32; one test window through the SNN checks SNN ≡ QANN logits exactly.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import spikemfm
from spikemfm.core.io import output_set, save_table
from spikemfm.core.provenance import add_results_args, results_run
from spikemfm.data.code import code_windows, stdlib_files
from spikemfm.lm.perplexity import logits_of, perplexity


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--calib-windows", type=int, default=16)
    ap.add_argument("--eval-windows", type=int, default=8)
    ap.add_argument("--bits", type=int, nargs="+", default=[8, 6])
    ap.add_argument("--alphas", type=float, nargs="+", default=[-1.0, 0.5, 0.8], help="negative: no smoothing")
    ap.add_argument("--gated-bits", type=int, help="bits of the gated MLP product feeding the down projection (mixed "
                    "precision: the layer the validation ablation in docs/decoders.md found costliest); default: --bits")
    ap.add_argument("--out", default="results/decoder_ppl")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    model = spikemfm.load("smollm2-135m")
    tok = spikemfm.models.load_tokenizer("smollm2-135m")
    cal = code_windows(stdlib_files("calibration"), tok, args.window, args.calib_windows)
    val = code_windows(stdlib_files("validation"), tok, args.window, args.eval_windows)
    test = code_windows(stdlib_files("test"), tok, args.window, args.eval_windows)
    batches = [cal[i:i + 2] for i in range(0, cal.shape[0], 2)]
    rows, best = [], {}  # per bits: (validation perplexity, alpha, QANN); only the best kept (a QANN is ~2 GB)
    fp_val = perplexity(model, val, "fp32 validation")
    rows.append({"split": "validation", "path": "fp32", "bits": "-", "alpha": "-", "perplexity": round(fp_val, 3)})
    for bits in args.bits:
        for alpha in args.alphas:
            mixed = () if args.gated_bits is None else (("*.mlp.gated", args.gated_bits),)
            cfg = spikemfm.QuantConfig(bits=bits, smooth=None if alpha < 0 else alpha, act_overrides=mixed)
            q = spikemfm.quantize(model, cfg, batches)
            ppl = perplexity(q, val, f"{bits}-bit alpha={alpha} validation")
            if bits not in best or ppl < best[bits][0]:
                best[bits] = (ppl, alpha, q)
            del q
            rows.append({"split": "validation", "path": "qann", "bits": bits, "gated_bits": args.gated_bits or bits,
                         "alpha": alpha if alpha >= 0 else "off",
                         "perplexity": round(ppl, 3), "vs_fp32": round(ppl / fp_val - 1, 4)})
    fp_test = perplexity(model, test, "fp32 test")
    rows.append({"split": "test", "path": "fp32", "bits": "-", "alpha": "-", "perplexity": round(fp_test, 3)})
    for bits in args.bits:
        _, alpha, q = best.pop(bits)
        ppl = perplexity(q, test, f"{bits}-bit test")
        snn = spikemfm.convert(q, spikemfm.ConvertConfig(max_spikes_per_step=None))
        same = bool(torch.equal(logits_of(snn, test[:1]), q(test[:1])))  # chunked: bounded memory
        rows.append({"split": "test", "path": "qann (chosen on validation)", "bits": bits,
                     "gated_bits": args.gated_bits or bits,
                     "alpha": alpha if alpha >= 0 else "off", "perplexity": round(ppl, 3),
                     "vs_fp32": round(ppl / fp_test - 1, 4), "snn_equals_qann_window0": same})
        del q, snn
    with output_set(Path(args.out)) as stage:
        save_table(stage, "decoder_ppl", rows, vars(args), "SmolLM2-135M perplexity on standard-library code "
                   "(validation: every configuration; test: FP32 and the configuration chosen on validation)")
    for r in rows:
        print(r)
    print(f"wrote {args.out}/decoder_ppl.{{json,csv,md}}")


if __name__ == "__main__":
    main()

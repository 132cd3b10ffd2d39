"""``spikemfm convert`` for causal LMs: quantize on code, convert, check SNN ≡ QANN on held-out code, save.

Calibration uses windows of :data:`WINDOW` tokens from the standard library's calibration split (at most
:data:`MAX_CALIB_WINDOWS`: the quantizer's statistics of a 135 M-parameter decoder grow with every window); the
summary's check runs one test-split window through the QANN, the FP32 model and the SNN (stepped until it
settles), so the saved file comes with its own evidence of exactness.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from spikemfm.errors import ConfigError
from spikemfm.lm.build import SMOOTH

WINDOW = 128
MAX_CALIB_WINDOWS = 16
CHECK_TOKENS = 32


def convert_lm(job: Any, progress: bool = True) -> dict[str, Any]:
    """Converts the causal LM of a ``ConvertJob`` (bits, max_spikes, calib_samples, out) and saves it."""
    import spikemfm
    from spikemfm.core.io import check_out_dir, file_sha256, output_set, write_json
    from spikemfm.core.provenance import provenance
    from spikemfm.data.code import code_windows, stdlib_files
    from spikemfm.lm.perplexity import logits_of
    from spikemfm.models import load_tokenizer
    from spikemfm.snn.serialize import save_converted

    _refuse_encoder_options(job)
    check_out_dir(job.out)
    model, tok = spikemfm.load(job.model), load_tokenizer(job.model)
    n_cal = min(job.calib_samples, MAX_CALIB_WINDOWS)
    calib = code_windows(stdlib_files("calibration"), tok, WINDOW, n_cal)
    qann = spikemfm.quantize(model, spikemfm.QuantConfig(bits=job.bits, smooth=SMOOTH),
                             [calib[i:i + 2] for i in range(0, calib.shape[0], 2)], progress=progress)
    snn = spikemfm.convert(qann, spikemfm.ConvertConfig(max_spikes_per_step=job.spikes_per_step))
    x = code_windows(stdlib_files("test"), tok, CHECK_TOKENS, 1)
    with torch.no_grad():
        ref, fp = qann(x), model(input_ids=x).logits.to(torch.float64)
    out = Path(job.out)
    summary = {**provenance(asdict(job)), "file": str(out / "model.snn.pt"), "graph": qann.graph.name,
               "weights": "pretrained (bundled or local)",
               "calibration_data": f"{calib.shape[0]} windows of {WINDOW} tokens, standard-library calibration split",
               "evaluation_data": f"1 window of {CHECK_TOKENS} tokens, standard-library test split",
               "smooth_alpha": SMOOTH, "params": sum(ql.w_int.numel() for ql in qann.qparams.linears.values()),
               "weight_bytes": sum(ql.total_bits for ql in qann.qparams.linears.values()) / 8,
               "snn_equals_qann": bool(torch.equal(logits_of(snn, x), ref)),
               "qann_vs_fp32_rel_l2": float((ref - fp).norm() / fp.norm()),
               "qann_vs_fp32_top1_agreement": float((ref.argmax(-1) == fp.argmax(-1)).double().mean())}
    with output_set(out) as stage:
        save_converted(snn, stage / "model.snn.pt", {"job": asdict(job), "input": None})
        summary["model_sha256"] = file_sha256(stage / "model.snn.pt")
        write_json(stage / "summary.json", summary)
    return summary


def _refuse_encoder_options(job: Any) -> None:
    """Options the decoder path does not implement: one clear error rather than silently ignoring them."""
    unsupported = {"budget": job.budget, "energy_budget": job.energy_budget, "head_ratio": job.head_ratio or None,
                   "mlp_ratio": job.mlp_ratio or None, "qat_steps": job.qat_steps or None, "data": job.data,
                   "checkpoint": job.checkpoint}
    given = [k for k, v in unsupported.items() if v is not None]
    if given:
        raise ConfigError(f"convert {job.model}: {', '.join(given)} not available for causal LMs yet (they calibrate "
                          "on standard-library code at uniform --bits); drop the option")

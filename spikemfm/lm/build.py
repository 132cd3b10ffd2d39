"""A causal LM by name, on the path asked for: the float model, its QANN or its SNN, calibrated on the
standard library's calibration split (:mod:`spikemfm.data.code`; never the validation or test files)."""
from __future__ import annotations

from typing import Any

from spikemfm.errors import ConfigError

PATHS = ("fp32", "qann", "snn")


def build_lm(name: str, path: str = "snn", bits: int = 8, smooth: float | None = 0.5, calib_windows: int = 8,
             window: int = 128, progress: bool = False) -> tuple[Any, Any]:
    """(model on ``path``, tokenizer) of the causal LM ``name`` (``smollm2-135m``, ``hf-lm:<name or folder>``)."""
    import spikemfm
    from spikemfm.data.code import code_windows, stdlib_files
    from spikemfm.ir.extract import extractor_for
    from spikemfm.models import load_tokenizer

    if path not in PATHS:
        raise ConfigError(f"path {path!r}: choose one of {PATHS}")
    model = spikemfm.load(name)
    if extractor_for(model).name != "hf-causal-lm":
        raise ConfigError(f"{name}: {type(model).__name__} is not a causal language model; generation needs one "
                          "(smollm2-135m, hf-lm:<name or folder>)")
    tok = load_tokenizer(name)
    if path == "fp32":
        return model, tok
    calib = code_windows(stdlib_files("calibration"), tok, window, calib_windows)
    qann = spikemfm.quantize(model, spikemfm.QuantConfig(bits=bits, smooth=smooth),
                             [calib[i:i + 2] for i in range(0, calib.shape[0], 2)], progress=progress)
    if path == "qann":
        return qann, tok
    return spikemfm.convert(qann, spikemfm.ConvertConfig(max_spikes_per_step=None)), tok

"""A causal LM by name, on the paths asked for: the float model, its QANN or its SNN, calibrated on the
standard library's calibration split (:mod:`spikemfm.data.code`; never the validation or test files)."""
from __future__ import annotations

from typing import Any

from spikemfm.errors import ConfigError

PATHS = ("fp32", "qann", "snn")
SMOOTH = 0.5  # SmoothQuant alpha: results/decoder_ppl chose it on the validation split, at 8 and at 6 bits


def build_paths(name: str, paths: tuple[str, ...] = PATHS, bits: int = 8, smooth: float | None = SMOOTH,
                calib_windows: int = 8, window: int = 128, max_spikes: int | None = None,
                progress: bool = False) -> tuple[dict[str, Any], Any]:
    """({path: model} for ``paths``, tokenizer) of the causal LM ``name`` (``smollm2-135m``, ``hf-lm:<name or
    folder>``), quantized once for both the QANN and the SNN."""
    import spikemfm
    from spikemfm.data.code import code_windows, stdlib_files
    from spikemfm.ir.extract import extractor_for
    from spikemfm.models import load_tokenizer

    bad = [p for p in paths if p not in PATHS]
    if bad or not paths:
        raise ConfigError(f"path(s) {bad or '(none)'}: choose from {PATHS}")
    model = spikemfm.load(name)
    if extractor_for(model).name != "hf-causal-lm":
        raise ConfigError(f"{name}: {type(model).__name__} is not a causal language model; this needs one "
                          "(smollm2-135m, hf-lm:<name or folder>)")
    tok = load_tokenizer(name)
    out: dict[str, Any] = {"fp32": model} if "fp32" in paths else {}
    if "qann" in paths or "snn" in paths:
        calib = code_windows(stdlib_files("calibration"), tok, window, calib_windows)
        qann = spikemfm.quantize(model, spikemfm.QuantConfig(bits=bits, smooth=smooth),
                                 [calib[i:i + 2] for i in range(0, calib.shape[0], 2)], progress=progress)
        if "qann" in paths:
            out["qann"] = qann
        if "snn" in paths:
            out["snn"] = spikemfm.convert(qann, spikemfm.ConvertConfig(max_spikes_per_step=max_spikes))
    return {p: out[p] for p in paths}, tok


def build_lm(name: str, path: str = "snn", bits: int = 8, smooth: float | None = SMOOTH, calib_windows: int = 8,
             window: int = 128, progress: bool = False) -> tuple[Any, Any]:
    """(model on ``path``, tokenizer) of the causal LM ``name``."""
    if path not in PATHS:
        raise ConfigError(f"path {path!r}: choose one of {PATHS}")
    models, tok = build_paths(name, (path,), bits, smooth, calib_windows, window, progress=progress)
    return models[path], tok

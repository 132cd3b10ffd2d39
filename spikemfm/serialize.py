"""Saving and reloading converted SNNs (graph, integer parameters and configs) as one file.

The file is a ``torch.save`` of plain dataclasses and tensors; :func:`load_converted` reads it with
``weights_only=True`` and only spikemfm's own node / parameter classes allowed, so loading a file
cannot run arbitrary code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from spikemfm.convert.config import ConvertConfig, QuantConfig
from spikemfm.convert.qann import QParams, QuantizedModel
from spikemfm.convert.quantizers import ActQuant, QLinear
from spikemfm.convert.spiking import SpikingModel
from spikemfm.errors import ModelLoadError
from spikemfm.io import atomic_path
from spikemfm.ir import nodes as N

FORMAT = "spikemfm-snn/1"
_CLASSES = [N.Linear, N.LayerNorm, N.Attention, N.MLP, N.Block, N.PatchEmbed, N.TokenEmbed, N.Readout,
            N.EncoderGraph, QParams, ActQuant, QLinear, QuantConfig, ConvertConfig]


def save_converted(snn: SpikingModel, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Writes ``snn`` (and JSON-able ``meta``) to ``path`` atomically; returns the path."""
    payload = {"format": FORMAT, "graph": snn.graph, "qparams": snn.qparams, "quant_config": snn.quant_config,
               "convert_config": snn.config, "meta": dict(meta or {})}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_converted(path: str | Path) -> tuple[SpikingModel, dict[str, Any]]:
    """Reads a file written by :func:`save_converted`; returns the SNN and its ``meta``.

    Raises:
        ModelLoadError: the file is missing, unreadable or not a spikemfm converted model.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"converted model {path}: no such file; write one with `spikemfm convert`")
    try:
        with torch.serialization.safe_globals(_CLASSES):
            payload = torch.load(path, weights_only=True)
    except Exception as exc:  # re-raised with the file named; torch raises many types for bad files
        raise ModelLoadError(f"converted model {path}: unreadable ({type(exc).__name__}: {exc}); "
                             "was it written by spikemfm.save_converted?") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelLoadError(f"converted model {path}: not a {FORMAT} file")
    qann = QuantizedModel(payload["graph"], payload["qparams"], payload["quant_config"])
    return SpikingModel(qann, payload["convert_config"]), payload["meta"]

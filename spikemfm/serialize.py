"""Saving and reloading converted SNNs (graph, integer parameters and configs) as one file.

The file is a ``torch.save`` of plain dataclasses and tensors; :func:`load_converted` reads it with
``weights_only=True`` and only spikemfm's own node / parameter classes allowed, so loading a file
cannot run arbitrary code.

Compact: integer weights are stored in the narrowest integer dtype that holds them (int8 at ≤ 8 bits) and every
other float64 tensor in float32 where that is exact (the graph's weights came from float32 modules), else in
float64; loading restores float64, so the reloaded model is bit-identical.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from spikemfm.convert.config import ConvertConfig, QuantConfig
from spikemfm.convert.qann import QuantizedModel
from spikemfm.quant.params import QParams
from spikemfm.quant.params import ActQuant, QLinear
from spikemfm.snn.model import SpikingModel
from spikemfm.errors import ModelLoadError
from spikemfm.io import atomic_path
from spikemfm.ir import nodes as N

FORMAT = "spikemfm-snn/2"  # /2: compact tensors, TokenEmbed token-type table, Readout.prefix_tokens
_CLASSES = [N.Linear, N.LayerNorm, N.Rope, N.Attention, N.MLP, N.Block, N.PatchEmbed, N.TokenEmbed, N.AttnPool,
            N.Readout, N.EncoderGraph, QParams, ActQuant, QLinear, QuantConfig, ConvertConfig]


def save_converted(snn: SpikingModel, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Writes ``snn`` (and JSON-able ``meta``) to ``path`` atomically; returns the path."""
    payload = _plain({"format": FORMAT, "graph": N.map_tensors(snn.graph, _compact),
                      "qparams": _pack_qparams(snn.qparams), "quant_config": snn.quant_config,
                      "convert_config": snn.config, "meta": dict(meta or {})})
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _plain(obj: Any) -> Any:
    """``obj`` with every typed point name (:class:`~spikemfm.ir.nodes.Point`) as the plain string it equals: the
    file holds only allow-listed classes (``weights_only`` loading)."""
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_plain(o) for o in obj)
    if isinstance(obj, dict):
        return {_plain(k): _plain(v) for k, v in obj.items()}
    if hasattr(obj, "__dataclass_fields__") and not isinstance(obj, type):
        return replace(obj, **{f: _plain(getattr(obj, f)) for f in obj.__dataclass_fields__})
    return obj


def _compact(t: torch.Tensor) -> torch.Tensor:
    """float64 → float32 where exact (every float in a converted model is float64 in memory)."""
    if t.dtype == torch.float64:
        small = t.to(torch.float32)
        if torch.equal(small.to(torch.float64), t):
            return small
    return t


def _int_dtype(w: torch.Tensor) -> torch.dtype | None:
    """The narrowest integer dtype holding the integer-valued tensor ``w`` exactly (None: not integer-valued)."""
    if not bool((w == w.round()).all()):
        return None
    hi = float(w.abs().max()) if w.numel() else 0.0
    return next((d for d in (torch.int8, torch.int16, torch.int32) if hi <= torch.iinfo(d).max), None)


def _pack_qparams(qp: QParams) -> QParams:
    packed = N.map_tensors(qp, _compact)
    for path, ql in qp.linears.items():
        kind = _int_dtype(ql.w_int)
        if kind is not None:
            packed.linears[path] = replace(packed.linears[path], w_int=ql.w_int.to(kind))
    return packed


def _widen(t: torch.Tensor) -> torch.Tensor:
    """Undoes the compact storage: float32 and int8/16/32 → float64 (integer counts stay int64)."""
    return t.to(torch.float64) if t.dtype in (torch.float32, torch.int8, torch.int16, torch.int32) else t


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
        found = payload.get("format") if isinstance(payload, dict) else None
        hint = "; it was written by an older spikemfm: convert the model again" if isinstance(found, str) and \
            found.startswith("spikemfm-snn/") else ""
        raise ModelLoadError(f"converted model {path}: not a {FORMAT} file{hint}")
    graph = N.map_tensors(payload["graph"], _widen)
    qparams = N.map_tensors(payload["qparams"], _widen)
    qann = QuantizedModel(graph, qparams, payload["quant_config"])
    return SpikingModel(qann, payload["convert_config"]), payload["meta"]

"""Saving and reloading converted SNNs (graph, integer parameters and configs) as one file.

The file is a ``torch.save`` of plain dataclasses and tensors; :func:`load_converted` reads it with
``weights_only=True`` and only spikemfm's own node / parameter classes allowed, so loading a file
cannot run arbitrary code.

Compact: integer weights are stored in the narrowest integer dtype that holds them (int8 at ≤ 8 bits) and every
other float64 tensor in float32 where that is exact (the graph's weights came from float32 modules), else in
float64; loading restores float64, so the reloaded model is bit-identical.

Integrity: the file stores the SHA-256 of its contents (every tensor's dtype, shape and bytes, every field), and
loading recomputes it, so a flipped byte or an edited weight is refused instead of silently changing outputs —
an integrity check, not a signature (whoever can write the file can recompute the digest). Before use, the
structure is validated: the classes of every part, integer-valued finite weights whose shapes match the graph's
layers, a quantizer for every neuron layer of the netlist.
"""
from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import fields, replace
from enum import Enum
from pathlib import Path
from typing import Any

import torch

from spikemfm.convert.config import ConvertConfig, QuantConfig
from spikemfm.convert.qann import QuantizedModel
from spikemfm.quant.params import QParams
from spikemfm.quant.params import ActQuant, QLinear
from spikemfm.snn.model import SpikingModel
from spikemfm.errors import ModelLoadError, SetMismatchWarning
from spikemfm.core.io import atomic_path, file_sha256
from spikemfm.ir import nodes as N
from spikemfm.ir import units

FORMAT = "spikemfm-snn/3"  # /2: compact tensors, token-type table, prefix tokens; /3: SHA-256 of the contents
# derived, never hand-kept: the graph's node classes, every registered unit kind's node, the parameter records
_CLASSES = [*dict.fromkeys((*N.node_classes(), *units.node_types())), QParams, ActQuant, QLinear, QuantConfig, ConvertConfig]


def save_converted(snn: SpikingModel, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Writes ``snn`` (and JSON-able ``meta``) to ``path`` atomically; returns the path."""
    payload = _plain({"format": FORMAT, "graph": N.map_tensors(snn.graph, _compact),
                      "qparams": _pack_qparams(snn.qparams), "quant_config": snn.quant_config,
                      "convert_config": snn.config, "meta": dict(meta or {})})
    payload["sha256"] = digest(payload)
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def digest(payload: dict[str, Any]) -> str:
    """SHA-256 of a payload's contents (its ``sha256`` entry excluded), independent of pickling details."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in payload.items() if k != "sha256"})
    return h.hexdigest()


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().contiguous().cpu()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k in sorted(obj, key=repr):
            _feed(h, k)
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}{len(obj)}".encode())
        for o in obj:
            _feed(h, o)
    elif hasattr(obj, "__dataclass_fields__") and not isinstance(obj, type):
        h.update(f"C{type(obj).__name__}".encode())
        for f in fields(obj):
            _feed(h, f.name)
            _feed(h, getattr(obj, f.name))
    else:  # str, int, float, bool, None, enums: their repr is canonical
        h.update(f"{type(obj).__name__}:{obj.value if isinstance(obj, Enum) else obj!r}".encode())


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
    if payload.get("sha256") != digest(payload):
        raise ModelLoadError(f"converted model {path}: integrity check failed (the SHA-256 of its contents does not "
                             "match the one stored): the file was modified or corrupted; convert the model again")
    _check_types(path, payload)
    graph = N.map_tensors(payload["graph"], _widen)
    qparams = N.map_tensors(payload["qparams"], _widen)
    _check_parameters(path, graph, qparams)
    qann = QuantizedModel(graph, qparams, payload["quant_config"])
    check_summary(path)
    return SpikingModel(qann, payload["convert_config"]), payload["meta"]


def check_summary(path: Path) -> None:
    """Warns (one line) when the ``summary.json`` beside a model file names another file's SHA-256: the summary's
    figures then describe a model that is not there (two runs wrote into one folder)."""
    summary = path.parent / "summary.json"
    try:
        data = json.loads(summary.read_text(encoding="utf-8")) if summary.is_file() else {}
    except (OSError, ValueError):
        return
    named = data.get("model_sha256") if isinstance(data, dict) else None
    if not isinstance(named, str) or Path(str(data.get("file", path))).name != path.name:
        return  # no digest, or a summary of another file name
    actual = file_sha256(path)
    if named != actual:
        warnings.warn(f"{path}: {summary} describes another model file (SHA-256 {named[:12]}..., this one "
                      f"{actual[:12]}...): they come from different runs; convert the model again",
                      SetMismatchWarning, stacklevel=3)


_PARTS = {"graph": N.EncoderGraph, "qparams": QParams, "quant_config": QuantConfig, "convert_config": ConvertConfig,
          "meta": dict}


def _check_types(path: Path, payload: dict[str, Any]) -> None:
    for key, kind in _PARTS.items():
        if not isinstance(payload.get(key), kind):
            raise ModelLoadError(f"converted model {path}: field {key!r} is a {type(payload.get(key)).__name__}, "
                                 f"not a {kind.__name__}; the file is not a valid spikemfm model")


def _check_parameters(path: Path, graph: N.EncoderGraph, qp: QParams) -> None:
    """Integer, finite weights shaped like the graph's layers; a valid quantizer for every neuron layer."""
    from spikemfm.ir.netlist import build_netlist

    layers = {lin.path: lin for lin in N.find_nodes(graph, N.Linear)}
    for name, ql in qp.linears.items():
        w = ql.w_int
        lin = layers.get(name)
        if lin is None or tuple(w.shape) != tuple(lin.weight.shape):
            want = "no such layer in the graph" if lin is None else f"the graph's layer is {tuple(lin.weight.shape)}"
            raise ModelLoadError(f"converted model {path}: qparams.linears[{name!r}].w_int has shape "
                                 f"{tuple(w.shape)}; {want}")
        if not bool(torch.isfinite(w).all()) or not bool((w == w.round()).all()):
            raise ModelLoadError(f"converted model {path}: qparams.linears[{name!r}].w_int holds non-integer "
                                 "values; the file is corrupt")
    for rec in build_netlist(graph).neurons():
        q = qp.quants.get(rec.name)
        if q is None or not (isinstance(q.lo, int) and isinstance(q.hi, int) and q.lo <= 0 <= q.hi
                             and math.isfinite(q.step) and q.step > 0):
            raise ModelLoadError(f"converted model {path}: qparams.quants[{rec.name!r}] is missing or invalid")

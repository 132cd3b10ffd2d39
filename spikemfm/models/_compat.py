"""Import helpers for the vision stacks (timm, open_clip) on a CPU-only torch.

PyPI's torchvision wheels are CUDA builds: beside CPU torch its compiled extension fails to load and
``import torchvision`` dies with "operator torchvision::nms does not exist". timm and open_clip only
need torchvision's pure-Python parts, so when (and only when) the extension cannot be loaded we
declare the two operator schemas it registers at import time. Detection ops stay unusable; nothing
in spikemfm calls them.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor",
)
_LIBS: list = []  # keeps the FRAGMENT library alive for the life of the process


def _torchvision_extension_loads() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return True  # nothing to fix; the import error will say torchvision is missing
    for ext in sorted(Path(spec.origin).parent.glob("_C*.so")):
        try:
            torch.ops.load_library(str(ext))
            return True
        except (OSError, RuntimeError):
            return False
    return False


def ensure_torchvision_importable() -> None:
    """Makes ``import torchvision`` (and so timm / open_clip) work on a CPU-only torch."""
    if _LIBS or _torchvision_extension_loads():
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        lib.define(schema)
    _LIBS.append(lib)


def import_timm():
    """Imports timm after :func:`ensure_torchvision_importable`."""
    ensure_torchvision_importable()
    import timm

    return timm


def import_open_clip():
    """Imports open_clip after :func:`ensure_torchvision_importable`."""
    ensure_torchvision_importable()
    import open_clip

    return open_clip

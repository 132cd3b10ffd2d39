"""Makes ``import torchvision`` (and so ``import timm`` / ``import open_clip``) work beside a CPU-only torch.

PyPI's torchvision wheels are CUDA builds: beside CPU torch their compiled extension fails to load and
``import torchvision`` dies with "operator torchvision::nms does not exist". timm and open_clip need only
torchvision's pure-Python parts, so when (and only when) the extension cannot be loaded we declare the two
operator schemas torchvision registers at import time. Detection ops stay unusable; spikemfm calls none.

The declaration must come before *any* ``import torchvision`` in the process, and a user's script starts with
``import timm``, so the environment installs it: ``scripts/setup.sh`` copies this file into the venv's
site-packages as ``spikemfm_torchvision_shim`` with a ``.pth`` start-up line that calls :func:`install`, a lazy
import hook costing nothing until torchvision is first imported. This module imports nothing from spikemfm (it
runs at interpreter start-up) and nothing heavy until then.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor",
)
_SHIM_MODULES = ("spikemfm_torchvision_shim", "spikemfm.torchvision_shim")  # start-up copy, package copy
_LIBS: list = []  # keeps the FRAGMENT library alive for the life of the process


def _extension_loads(torch) -> bool:
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


def _declared(torch) -> bool:
    try:  # asks the dispatcher directly: `torch.ops.torchvision` lookups may themselves import torchvision
        torch._C._dispatch_find_schema_or_throw("torchvision::nms", "")
        return True
    except RuntimeError:
        return False


def declare_torchvision_ops() -> None:
    """Declares torchvision's operator schemas when its compiled extension cannot load (idempotent, also
    across copies of this module: the venv's start-up copy and ``spikemfm.torchvision_shim``)."""
    _disarm()  # torch's own import may look torchvision up: never re-enter from the hook
    import torch

    if _LIBS or _declared(torch) or _extension_loads(torch):
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        lib.define(schema)
    _LIBS.append(lib)


class _Finder:
    """A ``sys.meta_path`` entry that runs :func:`declare_torchvision_ops` once, just before torchvision loads."""

    def find_spec(self, fullname: str, path=None, target=None):  # noqa: D102 (importlib protocol)
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            declare_torchvision_ops()
        return None  # the regular finders locate the module


def _disarm() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__module__ not in _SHIM_MODULES]


def install() -> None:
    """Arms the lazy hook (the venv's ``.pth`` start-up line calls this)."""
    if "torchvision" in sys.modules:
        return
    _disarm()
    sys.meta_path.insert(0, _Finder())

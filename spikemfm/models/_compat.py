"""Import helpers for the vision stacks (timm, open_clip) on a CPU-only torch.

The environment made by ``scripts/setup.sh`` already arms :mod:`spikemfm.torchvision_shim` at interpreter
start-up, so ``import timm`` works in any order. These helpers make the same guarantee where spikemfm was
installed without that script (declaring the schemas is idempotent).
"""
from __future__ import annotations

from spikemfm.torchvision_shim import declare_torchvision_ops as ensure_torchvision_importable


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

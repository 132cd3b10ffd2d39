"""Loaders for each model family, behind :func:`spikemfm.models.load`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from spikemfm.errors import ModelLoadError
from spikemfm.models._compat import import_open_clip, import_timm


def load_timm(name: str, pretrained: bool = False, checkpoint: Path | None = None, **kwargs: Any) -> nn.Module:
    """A timm ViT/DeiT by model name.

    Args:
        name: timm model name, e.g. ``vit_small_patch16_224`` or ``deit_tiny_patch16_224``.
        pretrained: download the pretrained weights (needs network or a warm hub cache).
        checkpoint: a local weights file (``.safetensors``/``.pth``) used instead of the hub.
        **kwargs: timm constructor overrides (img_size, depth, embed_dim, ...).
    """
    timm = import_timm()
    if name not in timm.list_models():
        raise ModelLoadError(f"timm model {name!r} is unknown; see timm.list_models('vit_*')")
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise ModelLoadError(f"{path}: checkpoint not found")
        kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        pretrained = True
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs).eval()
    except (OSError, RuntimeError) as exc:
        raise ModelLoadError(f"timm model {name!r} could not be built/loaded: {exc}") from exc


def load_open_clip(name: str, pretrained: str | None = None, **kwargs: Any) -> nn.Module:
    """An open_clip CLIP model (both towers).

    Args:
        name: open_clip architecture, e.g. ``ViT-B-32``.
        pretrained: a pretrained tag (e.g. ``laion2b_s34b_b79k``, needs network) or a local checkpoint path.
        **kwargs: model config overrides (``embed_dim``, ``vision_cfg``, ``text_cfg``) for small configs.
    """
    open_clip = import_open_clip()
    if name not in open_clip.list_models():
        raise ModelLoadError(f"open_clip architecture {name!r} is unknown; see open_clip.list_models()")
    if pretrained is not None and ("/" in pretrained or pretrained.endswith((".pt", ".bin", ".safetensors"))):
        if not Path(pretrained).is_file():
            raise ModelLoadError(f"{pretrained}: open_clip checkpoint not found")
    try:
        return open_clip.create_model(name, pretrained=pretrained, **kwargs).eval()
    except (OSError, RuntimeError) as exc:
        raise ModelLoadError(f"open_clip model {name!r} (pretrained={pretrained!r}) failed to load: {exc}") from exc

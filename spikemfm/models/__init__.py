"""Model sources behind one function, :func:`load`.

Names:
    ``tiny-clip-fmnist``             the embedded default (trained image tower + pretrained MiniLM text tower)
    ``minilm``                       the real pretrained all-MiniLM-L6-v2 (BERT 6x384), offline
    ``timm:<name>``                  a timm ViT/DeiT, e.g. ``timm:deit_tiny_patch16_224``
    ``open_clip:<arch>``             an open_clip CLIP, e.g. ``open_clip:ViT-B-32``
    ``hf:<name or folder>``          a Hugging Face BERT-style encoder
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from spikemfm.errors import ModelLoadError

DEFAULT_MODEL = "tiny-clip-fmnist"
_FORMS = "tiny-clip-fmnist, minilm, timm:<name>, open_clip:<arch>, hf:<name-or-folder>"


def load(name: str, pretrained: bool | str | None = None, checkpoint: Path | str | None = None,
         **kwargs: Any) -> nn.Module:
    """Loads a model by name (see the module docstring for the forms).

    Args:
        name: model name.
        pretrained: timm: ``True`` for hub weights; open_clip: a tag or a local checkpoint path.
        checkpoint: local weights file (timm).
        **kwargs: constructor/config overrides passed to the family's factory.

    Raises:
        ModelLoadError: unknown name or weights that cannot be loaded.
    """
    if name == DEFAULT_MODEL:
        from spikemfm.models.tiny_clip import load_tiny_clip

        return load_tiny_clip(**kwargs)
    if name in ("minilm", "all-MiniLM-L6-v2"):
        from spikemfm.models.text import load_minilm

        return load_minilm(**kwargs)
    family, sep, rest = name.partition(":")
    if not sep or not rest:
        raise ModelLoadError(f"unknown model {name!r}; use one of: {_FORMS}")
    if family == "timm":
        from spikemfm.models.sources import load_timm

        return load_timm(rest, pretrained=bool(pretrained),
                         checkpoint=Path(checkpoint) if checkpoint else None, **kwargs)
    if family == "open_clip":
        from spikemfm.models.sources import load_open_clip

        return load_open_clip(rest, pretrained=pretrained if isinstance(pretrained, str) else None, **kwargs)
    if family == "hf":
        from spikemfm.models.text import load_hf_encoder

        return load_hf_encoder(rest, **kwargs)
    raise ModelLoadError(f"unknown model family {family!r} in {name!r}; use one of: {_FORMS}")


__all__ = ["DEFAULT_MODEL", "load"]

"""Model sources behind one function, :func:`load`.

Names:
    ``tiny-clip-fmnist``             the embedded default (trained image tower + pretrained MiniLM text tower)
    ``minilm``                       the real pretrained all-MiniLM-L6-v2 (BERT 6x384), offline
    ``timm:<name>``                  a timm ViT/DeiT, e.g. ``timm:deit_tiny_patch16_224``
    ``open_clip:<arch>``             an open_clip CLIP, e.g. ``open_clip:ViT-B-32``
    ``hf:<name or folder>``          a Hugging Face encoder (BERT, RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT,
                                     ALBERT), pooled as a sentence encoder
    ``smollm2-135m``                 the real pretrained SmolLM2-135M-Instruct (a LLaMA decoder), offline
    ``hf-lm:<name or folder>``       a Hugging Face causal LM (Llama, Qwen2, GPT-2)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from torch import nn

from spikemfm.errors import ModelLoadError

DEFAULT_MODEL = "tiny-clip-fmnist"
_FORMS = "tiny-clip-fmnist, minilm, smollm2-135m, timm:<name>, open_clip:<arch>, hf:<name-or-folder>, hf-lm:<name-or-folder>"


def _tiny_clip(**kwargs: Any) -> nn.Module:
    from spikemfm.models.tiny_clip import load_tiny_clip

    return load_tiny_clip(**kwargs)


def _minilm(**kwargs: Any) -> nn.Module:
    from spikemfm.models.text import load_minilm

    return load_minilm(**kwargs)


def _timm(rest: str, pretrained: bool | str | None, checkpoint: Path | str | None, **kwargs: Any) -> nn.Module:
    from spikemfm.models.sources import load_timm

    return load_timm(rest, pretrained=bool(pretrained), checkpoint=Path(checkpoint) if checkpoint else None, **kwargs)


def _open_clip(rest: str, pretrained: bool | str | None, checkpoint: Path | str | None, **kwargs: Any) -> nn.Module:
    from spikemfm.models.sources import load_open_clip

    return load_open_clip(rest, pretrained=pretrained if isinstance(pretrained, str) else
                          (str(checkpoint) if checkpoint else None), **kwargs)


def _hf(rest: str, pretrained: bool | str | None, checkpoint: Path | str | None, **kwargs: Any) -> nn.Module:
    from spikemfm.models.text import load_hf_encoder

    return load_hf_encoder(rest, **kwargs)


def _smollm2(**kwargs: Any) -> nn.Module:
    from spikemfm.models.causal import load_smollm2

    return load_smollm2(**kwargs)


def _hf_lm(rest: str, pretrained: bool | str | None, checkpoint: Path | str | None, **kwargs: Any) -> nn.Module:
    from spikemfm.models.causal import load_hf_causal

    return load_hf_causal(rest, **kwargs)


def load_tokenizer(name: str) -> Any:
    """The Hugging Face tokenizer of a causal LM (``smollm2-135m``, ``hf-lm:<name or folder>``)."""
    from spikemfm.models.causal import load_tokenizer as load

    return load(name)


# Registries: a name arrives as a string (CLI, TOML, saved models); a new source is one entry here.
NAMED: dict[str, Callable[..., nn.Module]] = {DEFAULT_MODEL: _tiny_clip, "minilm": _minilm,
                                              "all-MiniLM-L6-v2": _minilm, "smollm2-135m": _smollm2}
FAMILIES: dict[str, Callable[..., nn.Module]] = {"timm": _timm, "open_clip": _open_clip, "hf": _hf, "hf-lm": _hf_lm}


def load(name: str, pretrained: bool | str | None = None, checkpoint: Path | str | None = None,
         **kwargs: Any) -> nn.Module:
    """Loads a model by name (see the module docstring for the forms).

    Args:
        name: model name.
        pretrained: timm: ``True`` for hub weights; open_clip: a tag or a local checkpoint path.
        checkpoint: local weights file (timm; for open_clip the same as ``pretrained``).
        **kwargs: constructor/config overrides passed to the family's factory.

    Raises:
        ModelLoadError: unknown name or weights that cannot be loaded.
    """
    if not isinstance(name, str):
        raise ModelLoadError(f"model name must be a string, got {type(name).__name__}; use one of: {_FORMS}")
    if name in NAMED:
        return NAMED[name](**kwargs)
    family, sep, rest = name.partition(":")
    if not sep or not rest:
        raise ModelLoadError(f"unknown model {name!r}; use one of: {_FORMS}")
    if family not in FAMILIES:
        raise ModelLoadError(f"unknown model family {family!r} in {name!r}; use one of: {_FORMS}")
    return FAMILIES[family](rest, pretrained, checkpoint, **kwargs)


__all__ = ["DEFAULT_MODEL", "FAMILIES", "NAMED", "load", "load_tokenizer"]

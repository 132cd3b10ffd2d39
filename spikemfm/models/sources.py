"""Loaders for each model family, behind :func:`spikemfm.models.load`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikemfm.errors import ModelLoadError
from spikemfm.models._compat import import_open_clip, import_timm


_FACTORY_ERRORS = (AssertionError, TypeError, ValueError, KeyError, OSError, RuntimeError)


def short_error(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line`` of an exception, at most ``limit`` characters: a state-dict mismatch message runs to
    hundreds of lines (every missing key), which is no use on a terminal."""
    lines = str(exc).strip().splitlines() or [""]
    if not lines[0]:  # EOFError() of an empty file, ...
        return f"{type(exc).__name__} (no message: an empty or truncated file?)"
    text = f"{type(exc).__name__}: {lines[0][:limit]}" + ("…" if len(lines[0]) > limit else "")
    return text + (f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else "")


def _build(what: str, kwargs: dict[str, Any], factory: Any, any_error: bool = False) -> nn.Module:
    """``factory()``, with a factory's complaint about its options (timm asserts, open_clip raises TypeError...)
    turned into one :class:`ModelLoadError` naming the model and the options. ``any_error``: a weights file is
    read, so any exception (EOFError, UnpicklingError, SafetensorError, a state-dict mismatch) is the file's fault
    and reported the same way."""
    try:
        return factory()
    except Exception as exc:
        if not any_error and not isinstance(exc, _FACTORY_ERRORS):
            raise
        opts = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k != "pretrained_cfg_overlay") or "defaults"
        raise ModelLoadError(f"{what} could not be built/loaded with {opts}: {short_error(exc)}") from exc


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
        bare = _build(f"timm model {name!r}", kwargs, lambda: timm.create_model(name, pretrained=False, **kwargs))
        _check_timm_checkpoint(path, bare)
        # num_classes in the overlay: else timm drops a checkpoint head whose size differs from the hub config's
        # (1000) and leaves a random one, silently
        kwargs["pretrained_cfg_overlay"] = {"file": str(path), "num_classes": int(bare.num_classes)}
        pretrained = True
    what = f"timm model {name!r}" + (f" from checkpoint {checkpoint}" if checkpoint is not None else "")
    return _build(what, kwargs, lambda: timm.create_model(name, pretrained=pretrained, **kwargs),
                  any_error=checkpoint is not None).eval()


def _checkpoint_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a checkpoint without building anything from it (safetensors header, or a weights-only load)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors / torch raise many types for a bad file: one message naming it
        raise ModelLoadError(f"{path}: unreadable checkpoint ({short_error(exc)})") from exc
    state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path}: not a state dict checkpoint")
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


# What a shape mismatch of these tensors means, and the option that fixes it
_RESIZABLE = {"pos_embed": "img_size (and patch_size)", "head.weight": "num_classes"}


def _check_timm_checkpoint(path: Path, model: nn.Module) -> None:
    """Refuses a checkpoint whose position table or head does not fit the model built from the given options:
    timm would resample position embeddings / the caller would get a different head, silently."""
    shapes, own = _checkpoint_shapes(path), model.state_dict()
    for key, option in _RESIZABLE.items():
        if key in shapes and key in own and shapes[key] != tuple(own[key].shape):
            raise ModelLoadError(
                f"{path}: {key} has shape {shapes[key]} but the model built from these options has "
                f"{tuple(own[key].shape)}: set {option} to match the checkpoint (convert: --model-arg "
                f"{option.split()[0]}=...); spikemfm does not resize or replace weights silently")


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
    return _build(f"open_clip model {name!r} (pretrained={pretrained!r})", kwargs,
                  lambda: open_clip.create_model(name, pretrained=pretrained, **kwargs),
                  any_error=pretrained is not None).eval()

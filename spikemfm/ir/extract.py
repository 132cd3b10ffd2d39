"""The registry of tower families (:data:`EXTRACTORS`) that map torch modules onto :mod:`spikemfm.ir.nodes`.

One file per family: :mod:`~spikemfm.ir.from_timm` (``VisionTransformer`` / ``VisionTransformerDistilled``:
cls / avg / map pooling, class / distillation / register tokens, ``no_embed_class``, ``pre_norm``,
``pos_embed='none'``, LayerScale folded, qk-norm, ``Mlp`` / ``SwiGLU`` / ``GluMlp``),
:mod:`~spikemfm.ir.from_open_clip` (``VisionTransformer``, ``TimmModel`` trunks, CLIP / ``CustomTextCLIP`` text
towers through :class:`OpenClipTextTower`, causal or not, argmax / eos / first / last pooling, HF text encoders),
:mod:`~spikemfm.ir.from_hf` (BERT, RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT, ALBERT, and
:class:`spikemfm.models.text.TextEncoder` around any of them), :mod:`~spikemfm.ir.from_hf_causal` (causal
language models: ``LlamaForCausalLM``, ``Qwen2ForCausalLM``, ``GPT2LMHeadModel``). Anything else raises
:class:`UnsupportedModuleError` naming the module path, its type and what is supported; so does a configuration
of a known family that its extractor does not anticipate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from spikemfm.errors import SpikeMFMError
from spikemfm.ir import nodes as N
from spikemfm.ir.engine import Inputs
from spikemfm.ir.from_hf import HF_CLASSES, from_bert
from spikemfm.ir.from_hf_causal import CAUSAL_CLASSES, from_causal_lm
from spikemfm.ir.from_open_clip import (OpenClipTextTower, from_open_clip_text, from_open_clip_timm,
                                        from_open_clip_visual)
from spikemfm.ir.from_timm import from_timm_vit
from spikemfm.ir.from_timm_eva import from_timm_eva
from spikemfm.ir.mapping import SUPPORTED, unsupported

__all__ = ["EXTRACTORS", "Extractor", "OpenClipTextTower", "SUPPORTED", "extract", "extractor_for", "first_tensor",
           "from_bert", "from_open_clip_text", "from_open_clip_visual", "from_timm_eva", "from_timm_vit"]


@dataclass(frozen=True)
class Extractor:
    """One tower family: how it maps onto the graph and what of the module the graph must reproduce.

    Attributes:
        name: the family's registry name.
        matches: whether a module belongs to the family.
        build: (module, graph name or None) → graph.
        reference: (module, inputs) → the module's own output that the graph's output equals (the fidelity
            guard, :mod:`spikemfm.ir.fidelity`, runs it on a float64 copy).
        root: module → (the module whose submodule paths the graph's node paths are, prefix of those paths).
    """

    name: str
    matches: Callable[[nn.Module], bool]
    build: Callable[[nn.Module, str | None], N.EncoderGraph]
    reference: Callable[[nn.Module, Inputs], torch.Tensor]
    root: Callable[[nn.Module], tuple[nn.Module, str]] = lambda m: (m, "")


def first_tensor(y: Any) -> torch.Tensor:
    """A module's output tensor (the first item where it returns a tuple)."""
    return y[0] if isinstance(y, (tuple, list)) else y


def _hf_kwargs(x: Inputs) -> dict[str, torch.Tensor]:
    kwargs = {"input_ids": x.ids, "attention_mask": x.mask if x.mask is not None else torch.ones_like(x.ids)}
    return kwargs if x.types is None else {**kwargs, "token_type_ids": x.types}


def _is(module_prefix: str, *classes: str) -> Callable[[nn.Module], bool]:
    return lambda m: type(m).__module__.startswith(module_prefix) and type(m).__name__ in classes


EXTRACTORS: tuple[Extractor, ...] = (
    Extractor("timm-vit", _is("timm.", "VisionTransformer", "VisionTransformerDistilled"),
              lambda m, n: from_timm_vit(m, n or "timm-vit"), lambda m, x: m(x.pixels)),
    Extractor("timm-eva", _is("timm.", "Eva"), lambda m, n: from_timm_eva(m, n or "timm-eva"), lambda m, x: m(x.pixels)),
    Extractor("open_clip-visual", _is("open_clip.", "VisionTransformer"),
              lambda m, n: from_open_clip_visual(m, n or "open_clip-visual"), lambda m, x: first_tensor(m(x.pixels)),
              lambda m: (m, "visual.")),
    Extractor("open_clip-timm", _is("open_clip.", "TimmModel"),
              lambda m, n: from_open_clip_timm(m, n or "open_clip-timm"), lambda m, x: m(x.pixels),
              lambda m: (m, "visual.")),
    Extractor("open_clip-text", lambda m: isinstance(m, OpenClipTextTower),
              lambda m, n: from_open_clip_text(m, n or "open_clip-text"), lambda m, x: m(x.ids),
              lambda m: (m.text.transformer, "text.transformer.") if type(m.text).__name__ == "HFTextEncoder"
              else (m.clip, "")),
    Extractor("hf-encoder", lambda m: type(m).__name__ in HF_CLASSES,
              lambda m, n: from_bert(m, "cls", n or "bert"),
              lambda m, x: m(**_hf_kwargs(x)).last_hidden_state[:, 0]),
    Extractor("hf-causal-lm", lambda m: type(m).__name__ in CAUSAL_CLASSES, from_causal_lm,
              lambda m, x: m(**_hf_kwargs(x)).logits),
    Extractor("text-encoder", lambda m: type(m).__name__ == "TextEncoder",
              lambda m, n: from_bert(m.bert, "mean", n or "bert-mean", "bert."),
              lambda m, x: m.pooled(**_hf_kwargs(x)), lambda m: (m.bert, "")),
)


def extractor_for(model: nn.Module) -> Extractor:
    """The registered family of ``model``; raises :class:`UnsupportedModuleError` for anything else."""
    for ex in EXTRACTORS:
        if ex.matches(model):
            return ex
    if type(model).__name__ in ("CLIP", "TinyCLIP"):
        raise unsupported("", model, "a two-tower model: convert each tower (model.visual, and "
                           "OpenClipTextTower(model) for open_clip or model.text for TinyCLIP) separately")
    raise unsupported("", model, "not a supported transformer tower")


def extract(model: nn.Module, name: str | None = None) -> N.EncoderGraph:
    """Dispatches on the tower type; raises :class:`UnsupportedModuleError` for anything else, also for a
    configuration of a known family that its extractor does not anticipate (a missing attribute, an unexpected
    type), instead of a raw Python error."""
    ex = extractor_for(model)
    try:
        return ex.build(model, name)
    except SpikeMFMError:
        raise
    except (AttributeError, TypeError, KeyError, IndexError, ValueError, AssertionError) as exc:
        raise unsupported("", model, f"the {ex.name} extractor does not handle this configuration "
                          f"({type(exc).__name__}: {exc})") from exc

"""Maps timm, open_clip and Hugging Face transformer towers onto :mod:`spikemfm.ir.nodes`.

Supported: timm ``VisionTransformer`` (ViT/DeiT, pre-LN, cls token or avg pooling, LayerScale folded, ``pre_norm``
as in the ``vit_*_clip_*`` towers, ``pos_embed='none'``),
open_clip ``VisionTransformer`` and CLIP text tower (``OpenClipTextTower``), Hugging Face ``BertModel``
(post-LN) and :class:`spikemfm.models.text.TextEncoder` (BERT + mean pooling, e.g. all-MiniLM-L6-v2),
and :class:`spikemfm.models.tiny_clip.TinyCLIP` towers. Anything else raises
:class:`UnsupportedModuleError` naming the module path and type.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from spikemfm.errors import UnsupportedModuleError
from spikemfm.ir import nodes as N
from spikemfm.ir.engine import Inputs

SUPPORTED = ("timm VisionTransformer/DeiT", "open_clip VisionTransformer", "OpenClipTextTower",
             "transformers BertModel/RobertaModel/XLMRobertaModel", "spikemfm TextEncoder")
BERT_CLASSES = ("BertModel", "RobertaModel", "XLMRobertaModel")


def _unsupported(path: str, module: object, what: str) -> UnsupportedModuleError:
    return UnsupportedModuleError(
        f"{path or '<root>'} ({type(module).__module__}.{type(module).__name__}): {what}. "
        f"Supported towers: {', '.join(SUPPORTED)}")


def _t(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clone().float()


def _linear(path: str, m: nn.Module, scale: torch.Tensor | None = None) -> N.Linear:
    if not isinstance(m, nn.Linear):
        raise _unsupported(path, m, "expected nn.Linear")
    w, b = _t(m.weight), _t(m.bias) if m.bias is not None else None
    if scale is not None:  # fold LayerScale gamma into the output rows
        w, b = w * scale[:, None], (b * scale if b is not None else None)
    return N.Linear(path, w, b)


def _layernorm(path: str, m: nn.Module) -> N.LayerNorm:
    if not isinstance(m, nn.LayerNorm) or m.weight is None:
        raise _unsupported(path, m, "expected an affine nn.LayerNorm")
    return N.LayerNorm(path, _t(m.weight), _t(m.bias), float(m.eps))


def _identity(path: str, m: nn.Module | None, what: str) -> None:
    if m is not None and not isinstance(m, (nn.Identity, nn.Dropout)):
        raise _unsupported(path, m, f"{what} must be Identity/Dropout for conversion")


def _act_name(path: str, m: nn.Module) -> str:
    name = type(m).__name__
    if isinstance(m, nn.GELU):
        return "gelu_tanh" if m.approximate == "tanh" else "gelu"
    hf = {"GELUActivation": "gelu", "NewGELUActivation": "gelu_tanh", "GELUTanh": "gelu_tanh",
          "PytorchGELUTanh": "gelu_tanh", "QuickGELUActivation": "quick_gelu", "QuickGELU": "quick_gelu"}
    if name in hf:
        return hf[name]
    if isinstance(m, nn.ReLU):
        return "relu"
    raise _unsupported(path, m, f"activation {name} unsupported; supported: {N.ACTIVATIONS}")


def _layerscale(path: str, m: nn.Module) -> torch.Tensor | None:
    if isinstance(m, nn.Identity):
        return None
    gamma = getattr(m, "gamma", None)
    if gamma is None:
        raise _unsupported(path, m, "expected LayerScale (with .gamma) or Identity")
    return _t(gamma)


def _split_qkv(path: str, w: torch.Tensor, b: torch.Tensor | None) -> tuple[N.Linear, ...]:
    ws = _t(w).chunk(3, dim=0)
    bs = _t(b).chunk(3, dim=0) if b is not None else (None, None, None)
    return tuple(N.Linear(f"{path}[{n}]", wi, bi) for n, wi, bi in zip("qkv", ws, bs))


def _timm_block(path: str, blk: nn.Module) -> N.Block:
    a = blk.attn
    for sub in ("q_norm", "k_norm", "norm"):
        _identity(f"{path}.attn.{sub}", getattr(a, sub, None), sub)
    _identity(f"{path}.mlp.norm", getattr(blk.mlp, "norm", None), "mlp norm")
    if getattr(a, "qkv", None) is None:
        raise _unsupported(f"{path}.attn", a, "expected a fused qkv Linear")
    q, k, v = _split_qkv(f"{path}.attn.qkv", a.qkv.weight, a.qkv.bias)
    attn = N.Attention(f"{path}.attn", q, k, v,
                       _linear(f"{path}.attn.proj", a.proj, _layerscale(f"{path}.ls1", blk.ls1)),
                       int(a.num_heads), causal=False)
    mlp = N.MLP(f"{path}.mlp", _linear(f"{path}.mlp.fc1", blk.mlp.fc1), _act_name(f"{path}.mlp.act", blk.mlp.act),
                _linear(f"{path}.mlp.fc2", blk.mlp.fc2, _layerscale(f"{path}.ls2", blk.ls2)))
    return N.Block(path, True, _layernorm(f"{path}.norm1", blk.norm1), attn,
                   _layernorm(f"{path}.norm2", blk.norm2), mlp)


def from_timm_vit(m: nn.Module, name: str = "timm-vit") -> N.EncoderGraph:
    """A timm VisionTransformer / DeiT (not distilled) as an :class:`EncoderGraph`."""
    if getattr(m, "dist_token", None) is not None or getattr(m, "reg_token", None) is not None:
        raise _unsupported("", m, "distillation/register tokens unsupported")
    if m.global_pool not in ("token", "avg") or getattr(m, "attn_pool", None) is not None:
        raise _unsupported("", m, f"global_pool={m.global_pool!r} unsupported (token or avg)")
    _identity("patch_embed.norm", m.patch_embed.norm, "patch norm")
    if getattr(m, "no_embed_class", False):
        raise _unsupported("", m, "no_embed_class=True unsupported")
    pe = m.patch_embed.proj
    tokens = int(m.patch_embed.num_patches) + (1 if m.cls_token is not None else 0)
    pos = _t(m.pos_embed[0]) if m.pos_embed is not None else torch.zeros(tokens, pe.weight.shape[0])  # 'none'
    norm_pre = None if isinstance(m.norm_pre, nn.Identity) else _layernorm("norm_pre", m.norm_pre)  # CLIP towers
    embed = N.PatchEmbed("patch_embed", _t(pe.weight), _t(pe.bias) if pe.bias is not None else None,
                         _t(m.cls_token[0, 0]) if m.cls_token is not None else None, pos, norm_pre)
    blocks = tuple(_timm_block(f"blocks.{i}", b) for i, b in enumerate(m.blocks))
    pool = "cls" if m.global_pool == "token" else "avg_tokens"
    prefix = 0 if getattr(m, "pool_include_prefix", False) else int(m.num_prefix_tokens)
    after = not isinstance(m.fc_norm, nn.Identity)  # timm applies fc_norm after pooling, norm before
    if after and not isinstance(m.norm, nn.Identity):
        raise _unsupported("norm", m.norm, "both norm and fc_norm set")
    norm_path = "fc_norm" if after else "norm"
    norm = m.fc_norm if after else m.norm
    head = None if isinstance(m.head, nn.Identity) else _linear("head", m.head)
    readout = N.Readout(norm_path, None if isinstance(norm, nn.Identity) else _layernorm(norm_path, norm),
                        pool, head, norm_after_pool=after, prefix_tokens=prefix)
    return N.EncoderGraph(name, "image", embed, blocks, readout)


def _clip_block(path: str, blk: nn.Module, causal: bool) -> N.Block:
    a = blk.attn
    if not isinstance(a, nn.MultiheadAttention) or not a._qkv_same_embed_dim:
        raise _unsupported(f"{path}.attn", a, "expected nn.MultiheadAttention with packed in_proj")
    _identity(f"{path}.ln_attn", getattr(blk, "ln_attn", None), "ln_attn")
    q, k, v = _split_qkv(f"{path}.attn.in_proj", a.in_proj_weight, a.in_proj_bias)
    attn = N.Attention(f"{path}.attn", q, k, v,
                       _linear(f"{path}.attn.out_proj", a.out_proj, _layerscale(f"{path}.ls_1", blk.ls_1)),
                       int(a.num_heads), causal)
    mlp = N.MLP(f"{path}.mlp", _linear(f"{path}.mlp.c_fc", blk.mlp.c_fc),
                _act_name(f"{path}.mlp.gelu", blk.mlp.gelu),
                _linear(f"{path}.mlp.c_proj", blk.mlp.c_proj, _layerscale(f"{path}.ls_2", blk.ls_2)))
    return N.Block(path, True, _layernorm(f"{path}.ln_1", blk.ln_1), attn, _layernorm(f"{path}.ln_2", blk.ln_2), mlp)


def _proj_matrix(path: str, proj: torch.Tensor | nn.Module | None) -> N.Linear | None:
    if proj is None:
        return None
    if isinstance(proj, nn.Linear):
        return _linear(path, proj)
    return N.Linear(path, _t(proj).T.contiguous(), None)  # x @ P  ==  x Wᵀ with W = Pᵀ


def from_open_clip_visual(m: nn.Module, name: str = "open_clip-visual") -> N.EncoderGraph:
    """An open_clip ``VisionTransformer`` (the CLIP image tower)."""
    if m.attn_pool is not None or m.pool_type not in ("tok", "avg") or m.final_ln_after_pool:
        raise _unsupported("visual", m, "attentional pooling / final_ln_after_pool unsupported")
    conv = m.conv1
    embed = N.PatchEmbed("visual.conv1", _t(conv.weight), _t(conv.bias) if conv.bias is not None else None,
                         _t(m.class_embedding), _t(m.positional_embedding),
                         None if isinstance(m.ln_pre, nn.Identity) else _layernorm("visual.ln_pre", m.ln_pre))
    blocks = tuple(_clip_block(f"visual.transformer.resblocks.{i}", b, False)
                   for i, b in enumerate(m.transformer.resblocks))
    readout = N.Readout("visual.ln_post", _layernorm("visual.ln_post", m.ln_post),
                        "cls" if m.pool_type == "tok" else "avg_tokens", _proj_matrix("visual.proj", m.proj))
    return N.EncoderGraph(name, "image", embed, blocks, readout)


class OpenClipTextTower(nn.Module):
    """The text tower of an open_clip ``CLIP`` as its own module: ``forward(ids) = clip.encode_text(ids)``."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        if getattr(clip, "text_pool_type", "argmax") != "argmax":
            raise _unsupported("text", clip, f"text_pool_type={clip.text_pool_type!r} unsupported (argmax)")
        self.clip = clip

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(input_ids)


def from_open_clip_text(tower: OpenClipTextTower, name: str = "open_clip-text") -> N.EncoderGraph:
    """The CLIP text tower (token + position embeddings, causal mask unless ``no_causal_mask``, EOT pooling,
    projection)."""
    c = tower.clip
    embed = N.TokenEmbed("token_embedding", _t(c.token_embedding.weight), _t(c.positional_embedding), None, None)
    causal = getattr(c, "attn_mask", None) is not None  # open_clip drops the mask for no_causal_mask=True
    blocks = tuple(_clip_block(f"transformer.resblocks.{i}", b, causal) for i, b in enumerate(c.transformer.resblocks))
    readout = N.Readout("ln_final", _layernorm("ln_final", c.ln_final), "eot",
                        _proj_matrix("text_projection", c.text_projection))
    return N.EncoderGraph(name, "tokens", embed, blocks, readout)


def _bert_layer(path: str, layer: nn.Module) -> N.Block:
    sa, so = layer.attention.self, layer.attention.output
    if getattr(sa, "position_embedding_type", "absolute") != "absolute" or getattr(layer, "is_decoder", False):
        raise _unsupported(path, layer, "only absolute-position encoder layers are supported")
    heads = int(getattr(sa, "num_attention_heads", None) or sa.config.num_attention_heads)
    attn = N.Attention(f"{path}.attention", _linear(f"{path}.attention.self.query", sa.query),
                       _linear(f"{path}.attention.self.key", sa.key), _linear(f"{path}.attention.self.value", sa.value),
                       _linear(f"{path}.attention.output.dense", so.dense), heads, causal=False)
    act = layer.intermediate.intermediate_act_fn
    mlp = N.MLP(f"{path}.intermediate", _linear(f"{path}.intermediate.dense", layer.intermediate.dense),
                _act_name(f"{path}.intermediate.intermediate_act_fn", act),
                _linear(f"{path}.output.dense", layer.output.dense))
    return N.Block(path, False, _layernorm(f"{path}.attention.output.LayerNorm", so.LayerNorm), attn,
                   _layernorm(f"{path}.output.LayerNorm", layer.output.LayerNorm), mlp)


def _roberta_pad_id(path: str, bert: nn.Module) -> int | None:
    """RoBERTa-style embeddings number positions from ``padding_idx + 1`` (see :func:`engine.positions`)."""
    e = bert.embeddings
    if not hasattr(e, "create_position_ids_from_input_ids"):
        return None
    pad = getattr(e, "padding_idx", None)
    if pad is None:
        raise _unsupported(path, e, "RoBERTa-style embeddings without padding_idx")
    return int(pad)


def from_bert(bert: nn.Module, pool: str = "mean", name: str = "bert", path: str = "") -> N.EncoderGraph:
    """A Hugging Face ``BertModel`` (or RoBERTa / XLM-R, same layout); output = pooled last hidden state
    (``mean`` or ``cls``). Token types (sentence pairs) and RoBERTa position numbering are kept."""
    e = bert.embeddings
    types = getattr(e, "token_type_embeddings", None)
    embed = N.TokenEmbed("embeddings", _t(e.word_embeddings.weight), _t(e.position_embeddings.weight),
                         None if types is None else _t(types.weight),
                         _layernorm("embeddings.LayerNorm", e.LayerNorm), _roberta_pad_id(f"{path}embeddings", bert))
    blocks = tuple(_bert_layer(f"encoder.layer.{i}", layer) for i, layer in enumerate(bert.encoder.layer))
    return N.EncoderGraph(name, "tokens", embed, blocks, N.Readout("pooler", None, pool, None))


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
    Extractor("open_clip-visual", _is("open_clip.", "VisionTransformer"),
              lambda m, n: from_open_clip_visual(m, n or "open_clip-visual"), lambda m, x: first_tensor(m(x.pixels)),
              lambda m: (m, "visual.")),
    Extractor("open_clip-text", lambda m: isinstance(m, OpenClipTextTower),
              lambda m, n: from_open_clip_text(m, n or "open_clip-text"), lambda m, x: m(x.ids),
              lambda m: (m.clip, "")),
    Extractor("hf-bert", lambda m: type(m).__name__ in BERT_CLASSES,
              lambda m, n: from_bert(m, "cls", n or "bert"),
              lambda m, x: m(**_hf_kwargs(x)).last_hidden_state[:, 0]),
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
        raise _unsupported("", model, "a two-tower model: convert each tower (model.visual, and "
                           "OpenClipTextTower(model) for open_clip or model.text for TinyCLIP) separately")
    raise _unsupported("", model, "not a supported transformer tower")


def extract(model: nn.Module, name: str | None = None) -> N.EncoderGraph:
    """Dispatches on the tower type; raises :class:`UnsupportedModuleError` for anything else."""
    return extractor_for(model).build(model, name)

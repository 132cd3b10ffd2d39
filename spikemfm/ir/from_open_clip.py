"""open_clip image and text towers → :class:`~spikemfm.ir.nodes.EncoderGraph`."""
from __future__ import annotations

import torch
from torch import nn

from spikemfm.ir import nodes as N
from spikemfm.ir.mapping import act_name, identity, layernorm, layerscale, linear, split_qkv, tensor, unsupported


def _clip_block(path: str, blk: nn.Module, causal: bool) -> N.Block:
    a = blk.attn
    if not isinstance(a, nn.MultiheadAttention) or not a._qkv_same_embed_dim:
        raise unsupported(f"{path}.attn", a, "expected nn.MultiheadAttention with packed in_proj")
    identity(f"{path}.ln_attn", getattr(blk, "ln_attn", None), "ln_attn")
    q, k, v = split_qkv(f"{path}.attn.in_proj", a.in_proj_weight, a.in_proj_bias)
    attn = N.Attention(f"{path}.attn", q, k, v,
                       linear(f"{path}.attn.out_proj", a.out_proj, layerscale(f"{path}.ls_1", blk.ls_1)),
                       int(a.num_heads), causal)
    mlp = N.MLP(f"{path}.mlp", linear(f"{path}.mlp.c_fc", blk.mlp.c_fc),
                act_name(f"{path}.mlp.gelu", blk.mlp.gelu),
                linear(f"{path}.mlp.c_proj", blk.mlp.c_proj, layerscale(f"{path}.ls_2", blk.ls_2)))
    return N.Block(path, True, layernorm(f"{path}.ln_1", blk.ln_1), attn, layernorm(f"{path}.ln_2", blk.ln_2), mlp)


def _proj_matrix(path: str, proj: torch.Tensor | nn.Module | None) -> N.Linear | None:
    if proj is None:
        return None
    if isinstance(proj, nn.Linear):
        return linear(path, proj)
    return N.Linear(path, tensor(proj).T.contiguous(), None)  # x @ P  ==  x Wᵀ with W = Pᵀ


def from_open_clip_visual(m: nn.Module, name: str = "open_clip-visual") -> N.EncoderGraph:
    """An open_clip ``VisionTransformer`` (the CLIP image tower)."""
    if m.attn_pool is not None or m.pool_type not in ("tok", "avg") or m.final_ln_after_pool:
        raise unsupported("visual", m, "attentional pooling / final_ln_after_pool unsupported")
    conv = m.conv1
    embed = N.PatchEmbed("visual.conv1", tensor(conv.weight), tensor(conv.bias) if conv.bias is not None else None,
                         tensor(m.class_embedding), tensor(m.positional_embedding),
                         None if isinstance(m.ln_pre, nn.Identity) else layernorm("visual.ln_pre", m.ln_pre))
    blocks = tuple(_clip_block(f"visual.transformer.resblocks.{i}", b, False)
                   for i, b in enumerate(m.transformer.resblocks))
    readout = N.Readout("visual.ln_post", layernorm("visual.ln_post", m.ln_post),
                        "cls" if m.pool_type == "tok" else "avg_tokens", _proj_matrix("visual.proj", m.proj))
    return N.EncoderGraph(name, "image", embed, blocks, readout)


def from_open_clip_timm(m: nn.Module, name: str = "open_clip-timm") -> N.EncoderGraph:
    """open_clip's ``TimmModel`` image tower (SigLIP-family, ...): a timm ViT trunk, then its head (dropout and an
    optional linear projection), folded into the trunk's readout projection."""
    from dataclasses import replace

    from spikemfm.ir.from_timm import from_timm_vit
    from spikemfm.ir.from_timm_eva import from_timm_eva

    trunk_kind = type(m.trunk).__name__
    if not (type(m.trunk).__module__.startswith("timm.") and trunk_kind in ("VisionTransformer",
                                                                             "VisionTransformerDistilled", "Eva")):
        raise unsupported("visual.trunk", m.trunk, "only a timm VisionTransformer / Eva trunk is converted")
    linears = []
    for key, layer in m.head.named_children():
        if isinstance(layer, nn.Linear):
            linears.append(linear(f"visual.head.{key}", layer))
        elif not isinstance(layer, (nn.Identity, nn.Dropout)):
            raise unsupported(f"visual.head.{key}", layer, "head: only dropout and a linear projection are converted")
    g = (from_timm_eva if trunk_kind == "Eva" else from_timm_vit)(m.trunk, name)
    g = N.map_paths(g, "visual.trunk.")
    if not linears:
        return g
    head, = linears
    proj = g.readout.proj
    if proj is not None:  # the trunk's own classifier, then the projection: one Linear (W₂W₁, W₂b₁ + b₂)
        bias = head.weight @ proj.bias if proj.bias is not None else None
        if head.bias is not None:
            bias = head.bias if bias is None else bias + head.bias
        head = N.Linear(head.path, head.weight @ proj.weight, bias)
    return replace(g, readout=replace(g.readout, proj=head))


class OpenClipTextTower(nn.Module):
    """The text tower of an open_clip ``CLIP`` or ``CustomTextCLIP`` as its own module:
    ``forward(ids) = clip.encode_text(ids)``."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        if not hasattr(clip, "encode_text"):
            raise unsupported("", clip, "OpenClipTextTower wraps an open_clip CLIP / CustomTextCLIP (encode_text)")
        self.clip = clip

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(input_ids)

    @property
    def text(self) -> nn.Module:
        """The module holding the text transformer: the CLIP itself, or ``CustomTextCLIP.text``."""
        return getattr(self.clip, "text", None) or self.clip

    @property
    def prefix(self) -> str:
        """Path of :attr:`text` inside the CLIP."""
        return "text." if getattr(self.clip, "text", None) is not None else ""


_TEXT_POOLS = {"argmax": "eot", "eos": "eot", "first": "cls", "last": "last"}


def _text_pool(t: nn.Module, path: str) -> tuple[str, int | None]:
    """(readout pool, eos id) of an open_clip text tower's ``pool_type`` / ``text_pool_type``."""
    kind = getattr(t, "pool_type", None) or getattr(t, "text_pool_type", "argmax")
    if kind not in _TEXT_POOLS:
        raise unsupported(path, t, f"text pool_type={kind!r} unsupported (supported: {sorted(_TEXT_POOLS)})")
    eos = getattr(t, "eos_id", None) if kind == "eos" else None
    if kind == "eos" and eos is None:
        eos = getattr(t, "text_eos_id", None)
    return _TEXT_POOLS[kind], None if eos is None else int(eos)


def from_open_clip_text(tower: OpenClipTextTower, name: str = "open_clip-text") -> N.EncoderGraph:
    """The CLIP text tower (token + position embeddings, causal mask unless ``no_causal_mask``, argmax / eos /
    first / last pooling, projection); ``CustomTextCLIP`` text transformers too, and an HF text encoder
    (``HFTextEncoder``: a BERT-family encoder, mean / cls pooler, linear projection)."""
    t, pre = tower.text, tower.prefix
    if type(t).__name__ == "HFTextEncoder":
        return _from_hf_text(t, pre, name)
    if getattr(t, "cls_emb", None) is not None:
        raise unsupported(f"{pre}cls_emb", t, "an appended class token (CoCa) is not converted yet")
    pad_mask = bool(getattr(t, "use_pad_mask", False))
    embed = N.TokenEmbed(f"{pre}token_embedding", tensor(t.token_embedding.weight), tensor(t.positional_embedding),
                         None, None, mask_pad_id=int(t.pad_id) if pad_mask else None)
    causal = getattr(t, "attn_mask", None) is not None  # open_clip drops the mask for no_causal_mask=True
    blocks = tuple(_clip_block(f"{pre}transformer.resblocks.{i}", b, causal)
                   for i, b in enumerate(t.transformer.resblocks))
    pool, eos = _text_pool(t, pre.rstrip(".") or "text")
    readout = N.Readout(f"{pre}ln_final", layernorm(f"{pre}ln_final", t.ln_final), pool,
                        _proj_matrix(f"{pre}text_projection", t.text_projection), eos_id=eos)
    return N.EncoderGraph(name, "tokens", embed, blocks, readout)


def _from_hf_text(t: nn.Module, pre: str, name: str) -> N.EncoderGraph:
    """open_clip's ``HFTextEncoder``: padding from the ids (pad_token_id), an HF encoder, a pooler, a projection."""
    from dataclasses import replace

    from spikemfm.ir.from_hf import from_bert

    pooler = type(t.pooler).__name__
    pools = {"MeanPooler": "mean", "ClsLastHiddenStatePooler": "cls"}
    if pooler == "ClsPooler" and not getattr(t.pooler, "use_pooler_output", True):
        pools["ClsPooler"] = "cls"
    if pooler not in pools or getattr(t.pooler, "cls_token_position", 0) != 0:
        raise unsupported(f"{pre}pooler", t.pooler, f"pooler {pooler} unsupported (MeanPooler, "
                          "ClsLastHiddenStatePooler, ClsPooler without the HF pooler output)")
    proj = getattr(t, "proj", None)
    if proj is None:
        raise unsupported(f"{pre}proj", t, "no projection: open_clip builds none when proj_type is unset and the "
                          "output width differs from the model's (the module cannot run either)")
    if isinstance(proj, nn.Identity):
        head = None
    elif isinstance(proj, nn.Linear):
        head = linear(f"{pre}proj", proj)
    else:
        raise unsupported(f"{pre}proj", proj, "only a linear projection (proj_type 'linear' or none) is converted")
    g = from_bert(t.transformer, pools[pooler], name, f"{pre}transformer.")
    embed = replace(g.embed, mask_pad_id=int(t.config.pad_token_id))
    return replace(g, embed=embed, readout=replace(g.readout, proj=head))

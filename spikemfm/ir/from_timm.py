"""timm ``VisionTransformer`` / ``VisionTransformerDistilled`` → :class:`~spikemfm.ir.nodes.EncoderGraph`."""
from __future__ import annotations

import torch
from torch import nn

from spikemfm.ir import nodes as N
from spikemfm.ir.mapping import act_name, identity, layernorm, layerscale, linear, split_qkv, tensor, unsupported


_BLOCKS = ("Block",)  # timm's pre-LN block: x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x)))
_MLPS = ("Mlp", "SwiGLU", "GluMlp")  # fc1 → act → fc2; gated: act(gate) ⊙ value → (norm) → fc2


def timm_mlp(path: str, m: nn.Module, scale: torch.Tensor | None = None) -> N.MLP:
    """timm ``Mlp`` (no norm), ``SwiGLU`` (fc1_g gate, fc1_x value) or ``GluMlp`` (fc1 split in two halves)."""
    kind = type(m).__name__
    fc2 = linear(f"{path}.fc2", m.fc2, scale)
    act = act_name(f"{path}.act", m.act)
    norm = getattr(m, "norm", None)
    if kind == "Mlp":
        identity(f"{path}.norm", norm, "mlp norm (of a non-gated MLP)")
        return N.MLP(path, linear(f"{path}.fc1", m.fc1), act, fc2)
    norm = None if isinstance(norm, (type(None), nn.Identity)) else layernorm(f"{path}.norm", norm)
    if kind == "SwiGLU":
        return N.MLP(path, linear(f"{path}.fc1_x", m.fc1_x), act, fc2, linear(f"{path}.fc1_g", m.fc1_g), norm)
    if kind != "GluMlp" or getattr(m, "chunk_dim", -1) != -1:
        raise unsupported(path, m, f"MLP type {kind} unsupported (supported: {_MLPS})")
    fc1 = linear(f"{path}.fc1", m.fc1)
    (w1, w2), bs = fc1.weight.chunk(2), (fc1.bias.chunk(2) if fc1.bias is not None else (None, None))
    halves = [N.Linear(f"{path}.fc1[{i}]", w, b) for i, (w, b) in enumerate(zip((w1, w2), bs))]
    value, gate = halves if m.gate_last else halves[::-1]  # gate_last: x1 ⊙ act(x2)
    return N.MLP(path, value, act, fc2, gate, norm)


def _timm_block(path: str, blk: nn.Module) -> N.Block:
    if type(blk).__name__ not in _BLOCKS:
        raise unsupported(path, blk, f"block type {type(blk).__name__} unsupported (supported: {_BLOCKS}; "
                          "post-norm ResPostBlock, parallel and gated-MLP blocks are not converted yet)")
    if type(blk.mlp).__name__ not in _MLPS:
        raise unsupported(f"{path}.mlp", blk.mlp, f"MLP type {type(blk.mlp).__name__} unsupported (supported: "
                          f"{_MLPS})")
    a = blk.attn
    if type(a).__name__ != "Attention":
        raise unsupported(f"{path}.attn", a, f"attention type {type(a).__name__} unsupported (timm Attention)")
    identity(f"{path}.attn.norm", getattr(a, "norm", None), "norm")
    qk_norms = tuple(None if isinstance(getattr(a, sub, None), (type(None), nn.Identity)) else
                     layernorm(f"{path}.attn.{sub}", getattr(a, sub)) for sub in ("q_norm", "k_norm"))
    if getattr(a, "qkv", None) is None:
        raise unsupported(f"{path}.attn", a, "expected a fused qkv Linear")
    q, k, v = split_qkv(f"{path}.attn.qkv", a.qkv.weight, a.qkv.bias)
    attn = N.Attention(f"{path}.attn", q, k, v,
                       linear(f"{path}.attn.proj", a.proj, layerscale(f"{path}.ls1", blk.ls1)),
                       int(a.num_heads), False, *qk_norms)
    mlp = timm_mlp(f"{path}.mlp", blk.mlp, layerscale(f"{path}.ls2", blk.ls2))
    return N.Block(path, True, layernorm(f"{path}.norm1", blk.norm1), attn,
                   layernorm(f"{path}.norm2", blk.norm2), mlp)


def patch_embed(m: nn.Module) -> N.PatchEmbed:
    """The encoding: patch convolution, class / distillation / register tokens, positions, ``norm_pre``."""
    if type(m.patch_embed).__name__ != "PatchEmbed" or getattr(m.patch_embed, "backbone", None) is not None:
        raise unsupported("patch_embed", m.patch_embed, "only timm's PatchEmbed (a patch convolution of the image) "
                          "is converted; hybrid CNN stems are not")
    identity("patch_embed.norm", getattr(m.patch_embed, "norm", None), "patch norm")
    pe = getattr(m.patch_embed, "proj", None)
    if not isinstance(pe, nn.Conv2d) or pe.stride != pe.kernel_size or pe.padding not in ((0, 0), "valid") \
            or pe.kernel_size[0] != pe.kernel_size[1] or pe.groups != 1:
        raise unsupported("patch_embed.proj", pe, "expected a square non-overlapping patch nn.Conv2d "
                          "(kernel = stride, no padding)")
    no_embed_class = bool(getattr(m, "no_embed_class", False))
    extra = [tensor(t[0]) for t in (getattr(m, "dist_token", None), getattr(m, "reg_token", None)) if t is not None]
    cls = tensor(m.cls_token[0, 0]) if m.cls_token is not None else None
    prefix = (cls is not None) + sum(int(t.shape[0]) for t in extra)
    if prefix != int(m.num_prefix_tokens):
        raise unsupported("", m, f"{m.num_prefix_tokens} prefix tokens, of which only {prefix} are known "
                          "(class, distillation, register)")
    tokens = int(m.patch_embed.num_patches) + (0 if no_embed_class else prefix)
    pos = tensor(m.pos_embed[0]) if m.pos_embed is not None else torch.zeros(tokens, pe.weight.shape[0])  # 'none'
    if pos.shape[0] != tokens:
        raise unsupported("pos_embed", m, f"position table of {pos.shape[0]} rows for {tokens} tokens")
    norm_pre = None if isinstance(m.norm_pre, nn.Identity) else layernorm("norm_pre", m.norm_pre)  # CLIP towers
    return N.PatchEmbed("patch_embed", tensor(pe.weight), tensor(pe.bias) if pe.bias is not None else None,
                        cls, pos, norm_pre, torch.cat(extra) if extra else None, pos_on_prefix=not no_embed_class)


def _distilled_head(m: nn.Module) -> N.Linear:
    """DeiT distilled: (head(x₀) + head_dist(x₁)) / 2 as one Linear on [x₀; x₁] with both heads halved."""
    width = int(m.embed_dim)
    parts = []
    for path in ("head", "head_dist"):
        h = getattr(m, path)
        if isinstance(h, nn.Identity):  # no classifier: the average of the two tokens
            parts.append((torch.eye(width), None))
        else:
            lin = linear(path, h)
            parts.append((lin.weight, lin.bias))
    (w0, b0), (w1, b1) = parts
    if w0.shape != w1.shape:
        raise unsupported("head_dist", m.head_dist, "head and head_dist differ in shape")
    bias = None if b0 is None and b1 is None else \
        ((b0 if b0 is not None else 0) + (b1 if b1 is not None else 0)) / 2
    return N.Linear("head", torch.cat([w0, w1], dim=1) / 2, bias)


def map_pool(ap: nn.Module, skip: int) -> N.AttnPool:
    """timm ``AttentionPoolLatent`` (``global_pool='map'``) as an :class:`~spikemfm.ir.nodes.AttnPool`."""
    path = "attn_pool"
    if type(ap).__name__ != "AttentionPoolLatent":
        raise unsupported(path, ap, "only timm's AttentionPoolLatent is converted as attention pooling")
    identity(f"{path}.q_norm", getattr(ap, "q_norm", None), "q_norm (qk-norm in attention pooling)")
    identity(f"{path}.k_norm", getattr(ap, "k_norm", None), "k_norm (qk-norm in attention pooling)")
    if getattr(ap, "pos_embed", None) is not None or ap.latent.shape[1] != 1:
        raise unsupported(path, ap, "attention pooling with its own position table or several latents")
    latent = tensor(ap.latent[0])
    if isinstance(ap.q, nn.Identity):  # q_proj=False: the latent is the query
        q = N.Linear(f"{path}.q", torch.eye(latent.shape[-1]), None)
    else:
        q = linear(f"{path}.q", ap.q)
    kv = linear(f"{path}.kv", ap.kv)
    (wk, wv), (bk, bv) = kv.weight.chunk(2), (kv.bias.chunk(2) if kv.bias is not None else (None, None))
    o = linear(f"{path}.proj", ap.proj) if isinstance(ap.proj, nn.Linear) else \
        N.Linear(f"{path}.proj", torch.eye(wv.shape[0]), None)
    attn = N.Attention(path, q, N.Linear(f"{path}.kv[k]", wk, bk), N.Linear(f"{path}.kv[v]", wv, bv), o,
                       int(ap.num_heads), causal=False)
    mlp = norm = None
    if ap.mlp is not None:
        if type(ap.mlp).__name__ not in _MLPS:
            raise unsupported(f"{path}.mlp", ap.mlp, f"MLP type {type(ap.mlp).__name__} unsupported")
        mlp = N.MLP(f"{path}.mlp", linear(f"{path}.mlp.fc1", ap.mlp.fc1), act_name(f"{path}.mlp.act", ap.mlp.act),
                    linear(f"{path}.mlp.fc2", ap.mlp.fc2))
        identity(f"{path}.mlp.norm", getattr(ap.mlp, "norm", None), "mlp norm")
        norm = None if isinstance(ap.norm, nn.Identity) else layernorm(f"{path}.norm", ap.norm)
    return N.AttnPool(path, latent, attn, norm, mlp, skip)


def from_timm_vit(m: nn.Module, name: str = "timm-vit") -> N.EncoderGraph:
    """A timm VisionTransformer / DeiT (also distilled, with registers, ``no_embed_class``) as an
    :class:`EncoderGraph`."""
    distilled = getattr(m, "dist_token", None) is not None
    if m.global_pool not in ("token", "avg", "map"):
        raise unsupported("", m, f"global_pool={m.global_pool!r} unsupported (token, avg or map)")
    if distilled and (m.global_pool != "token" or m.cls_token is None):
        raise unsupported("", m, "a distilled DeiT reads its class and distillation tokens: global_pool='token'")
    embed = patch_embed(m)
    blocks = tuple(_timm_block(f"blocks.{i}", b) for i, b in enumerate(m.blocks))
    after = not isinstance(m.fc_norm, nn.Identity)  # timm applies fc_norm after pooling, norm before
    if after and not isinstance(m.norm, nn.Identity):
        raise unsupported("norm", m.norm, "both norm and fc_norm set")
    norm_path = "fc_norm" if after else "norm"
    norm = m.fc_norm if after else m.norm
    attn_pool = None
    if distilled:
        pool, prefix, head = "concat_prefix", 2, _distilled_head(m)
    elif m.global_pool == "map":
        pool, prefix = "map", 0
        attn_pool = map_pool(m.attn_pool, 0 if getattr(m, "pool_include_prefix", False) else
                               int(m.num_prefix_tokens))
        head = None if isinstance(m.head, nn.Identity) else linear("head", m.head)
    else:
        pool = "cls" if m.global_pool == "token" else "avg_tokens"
        prefix = 0 if getattr(m, "pool_include_prefix", False) else int(m.num_prefix_tokens)
        head = None if isinstance(m.head, nn.Identity) else linear("head", m.head)
    readout = N.Readout(norm_path, None if isinstance(norm, nn.Identity) else layernorm(norm_path, norm),
                        pool, head, norm_after_pool=after, prefix_tokens=prefix, attn_pool=attn_pool)
    return N.EncoderGraph(name, "image", embed, blocks, readout)

"""timm ``Eva`` (EVA-02, EVA, the RoPE ViTs built on it) → :class:`~spikemfm.ir.nodes.EncoderGraph`.

What EVA-02 adds to a ViT, and where it lands in the graph: rotary position embeddings on q and k
(:class:`~spikemfm.ir.nodes.Rope`, float units on the q/k currents, prefix tokens not rotated), a sub-LN on the
merged attention context (``Attention.norm``), separate q/v biases on a fused qkv, SwiGLU / GluMlp MLPs with an
optional sub-LN (gated :class:`~spikemfm.ir.nodes.MLP`), and LayerScale (``gamma_1`` / ``gamma_2``, folded).
``AttentionRope`` (timm's RoPE ViTs, DINOv3, PE-Core) maps the same way. Refused with a clear error: post-norm
blocks, gated attention outputs, grouped kv heads, depth-dependent ("mixed") RoPE. A dynamic-image-size model is
converted at its native grid.
"""
from __future__ import annotations

import torch
from torch import nn

from spikemfm.ir import nodes as N
from spikemfm.ir.from_timm import map_pool, patch_embed, timm_mlp
from spikemfm.ir.mapping import identity, layernorm, linear, tensor, unsupported


def _qkv(path: str, a: nn.Module) -> tuple[N.Linear, N.Linear, N.Linear]:
    """q, k, v Linears of an ``EvaAttention`` (fused qkv with separate biases, or three projections)."""
    if a.qkv is None:
        return (linear(f"{path}.q_proj", a.q_proj), linear(f"{path}.k_proj", a.k_proj),
                linear(f"{path}.v_proj", a.v_proj))
    w = tensor(a.qkv.weight).chunk(3, dim=0)
    if getattr(a, "q_bias", None) is not None:
        bias = tensor(torch.cat((a.q_bias, a.k_bias, a.v_bias))).chunk(3)
        if a.qkv.bias is not None:  # qkv_bias_separate: both added
            bias = tuple(b + extra for b, extra in zip(bias, tensor(a.qkv.bias).chunk(3)))
    else:
        bias = tensor(a.qkv.bias).chunk(3) if a.qkv.bias is not None else (None, None, None)
    return tuple(N.Linear(f"{path}.qkv[{n}]", wi, bi) for n, wi, bi in zip("qkv", w, bias))


def _rope(path: str, table: torch.Tensor | None, a: nn.Module) -> tuple[N.Rope | None, N.Rope | None]:
    if table is None:
        return None, None
    sin, cos = tensor(table).chunk(2, -1)
    half, prefix = bool(getattr(a, "rotate_half", False)), int(a.num_prefix_tokens)
    return N.Rope(f"{path}.q_rope", sin, cos, half, prefix), N.Rope(f"{path}.k_rope", sin, cos, half, prefix)


def _eva_block(path: str, blk: nn.Module, table: torch.Tensor | None) -> N.Block:
    if type(blk).__name__ != "EvaBlock":
        raise unsupported(path, blk, f"block type {type(blk).__name__} unsupported (EvaBlock; post-norm EVA blocks "
                          "are not converted)")
    a = blk.attn
    if type(a).__name__ not in ("EvaAttention", "AttentionRope") or a.gate is not None:
        raise unsupported(f"{path}.attn", a, "only EvaAttention / AttentionRope without an output gate is converted")
    q, k, v = _qkv(f"{path}.attn", a)
    if abs(float(a.scale) - a.head_dim ** -0.5) > 1e-12 or not q.weight.shape == k.weight.shape == v.weight.shape \
            or a.head_dim * a.num_heads != q.weight.shape[0]:
        raise unsupported(f"{path}.attn", a, "attention with a non-standard scale or grouped kv heads")
    norms = tuple(None if isinstance(getattr(a, s), nn.Identity) else layernorm(f"{path}.attn.{s}", getattr(a, s))
                  for s in ("q_norm", "k_norm"))
    q_rope, k_rope = _rope(f"{path}.attn", table, a)
    sub = None if isinstance(a.norm, nn.Identity) else layernorm(f"{path}.attn.norm", a.norm)
    g1 = None if blk.gamma_1 is None else tensor(blk.gamma_1)
    g2 = None if blk.gamma_2 is None else tensor(blk.gamma_2)
    attn = N.Attention(f"{path}.attn", q, k, v, linear(f"{path}.attn.proj", a.proj, g1), int(a.num_heads), False,
                       *norms, q_rope, k_rope, sub)
    return N.Block(path, True, layernorm(f"{path}.norm1", blk.norm1), attn, layernorm(f"{path}.norm2", blk.norm2),
                   timm_mlp(f"{path}.mlp", blk.mlp, g2))


def _rope_table(m: nn.Module) -> torch.Tensor | None:
    """The model's RoPE table (patches, 2·d) = [sin | cos] at its native grid, or None."""
    if m.rope is None:
        return None
    if getattr(m, "rope_mixed", False):
        raise unsupported("rope", m.rope, "depth-dependent (mixed) RoPE is not converted")
    if getattr(m, "dynamic_img_size", False) or not hasattr(m.rope, "feat_shape"):  # as Eva._pos_embed asks it
        table = m.rope.get_embed(shape=tuple(m.patch_embed.grid_size))
    else:
        table = m.rope.get_embed()
    if table.dim() != 2 or table.shape[0] != int(m.patch_embed.num_patches):
        raise unsupported("rope", m.rope, f"a RoPE table of shape {tuple(table.shape)} (one row per patch expected)")
    return table


def from_timm_eva(m: nn.Module, name: str = "timm-eva") -> N.EncoderGraph:
    """A timm ``Eva`` model (EVA-02 and relatives) as an :class:`EncoderGraph`."""
    # dynamic_img_size / patch dropout: at the native grid (the graph's size; other sizes are refused by the
    # encoding) the position and RoPE tables are the native ones, and patch dropout is off in eval; the fidelity
    # guard checks it on the calibration inputs
    if m.global_pool not in ("token", "avg", "map"):
        raise unsupported("", m, f"global_pool={m.global_pool!r} unsupported (token, avg or map)")
    table = _rope_table(m)
    embed = patch_embed(m)
    blocks = tuple(_eva_block(f"blocks.{i}", b, table) for i, b in enumerate(m.blocks))
    after = not isinstance(m.fc_norm, nn.Identity)
    if after and not isinstance(m.norm, nn.Identity):
        raise unsupported("norm", m.norm, "both norm and fc_norm set")
    norm_path, norm = ("fc_norm", m.fc_norm) if after else ("norm", m.norm)
    identity("head_drop", getattr(m, "head_drop", None), "head dropout")
    head = None if isinstance(m.head, nn.Identity) else linear("head", m.head)
    prefix = int(m.num_prefix_tokens)
    attn_pool = map_pool(m.attn_pool, 0) if m.global_pool == "map" else None  # Eva pools over every token
    pool = {"token": "cls", "avg": "avg_tokens", "map": "map"}[m.global_pool]
    readout = N.Readout(norm_path, None if isinstance(norm, nn.Identity) else layernorm(norm_path, norm), pool, head,
                        norm_after_pool=after, prefix_tokens=0 if pool == "map" else prefix, attn_pool=attn_pool)
    return N.EncoderGraph(name, "image", embed, blocks, readout)

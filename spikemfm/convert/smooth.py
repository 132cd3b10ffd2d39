"""SmoothQuant-style channel scaling folded into the weights: per-channel (per-neuron) activation ranges for LLMs.

LLM activations carry outlier channels (a few channels 10–100× the rest) that wreck a per-tensor step. Where a
neuron layer's input is produced channel by channel by a linear map and read only by synaptic layers, channel j
can be divided by s_j at its producer and multiplied back in the weights that read it — the same function in
exact arithmetic:

    norm → Linear        y = norm(x) ⊙ (w / s) · (W ⊙ s)ᵀ        (RMSNorm / LayerNorm weight and bias divided)
    up ⊙ act(gate) → down  v = x (W_up / s)ᵀ,  y = (g ⊙ v)(W_down ⊙ s)ᵀ           (a gated MLP's value)
    A·V → o              V = x (W_v / s)ᵀ,   y = (A·V)(W_o ⊙ s)ᵀ          (per head channel; shared by a KV group)

with s_j = max|X_j|^α / max|W_{:,j}|^(1−α) from calibration data (α = 0.5: SmoothQuant). At α = 1 every channel's
range is the same, so one step per layer *is* a per-channel step: each neuron's threshold θ·s_j on the original
scale. The graph stays one graph (no runtime change); the fidelity guard runs on the unsmoothed extraction.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable

import torch

from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.ir.float_ops import FloatOps

SMOOTHED = (N.Role.ATTN_IN, N.Role.MLP_IN, N.Role.GATED, N.Role.CTX, N.Role.READOUT_IN)


@torch.no_grad()
def channel_ranges(graph: N.EncoderGraph, batches: Iterable[Any]) -> dict[str, torch.Tensor]:
    """max |x| per channel (last axis) at every smoothable neuron layer, over the batches (float64 graph)."""
    ranges: dict[str, torch.Tensor] = {}

    def observe(point: str, x: torch.Tensor) -> None:
        if getattr(point, "role", None) in SMOOTHED:
            m = x.detach().abs().reshape(-1, x.shape[-1]).amax(0)
            ranges[point] = m if point not in ranges else torch.maximum(ranges[point], m)
    for batch in batches:
        engine.run(graph, engine.as_inputs(graph, batch), FloatOps(observe=observe), torch.float64)
    return ranges


def factors(act: torch.Tensor, weights: list[torch.Tensor], alpha: float) -> torch.Tensor:
    """s_j = max|X_j|^α / max|W_{:,j}|^(1−α) over the weights reading channel j (1 where either is zero)."""
    w = torch.stack([x.abs().amax(0) for x in weights]).amax(0).to(torch.float64)
    a = act.to(torch.float64)
    s = a.clamp_min(1e-12) ** alpha / w.clamp_min(1e-12) ** (1 - alpha)
    return torch.where((a > 0) & (w > 0), s, torch.ones_like(s))


def _cols(lin: N.Linear, s: torch.Tensor) -> N.Linear:
    return replace(lin, weight=lin.weight * s.to(lin.weight)[None, :])


def _rows(lin: N.Linear, s: torch.Tensor) -> N.Linear:
    s = s.to(lin.weight)
    return replace(lin, weight=lin.weight / s[:, None], bias=None if lin.bias is None else lin.bias / s)


def _norm(norm: Any, s: torch.Tensor) -> Any:
    s = s.to(norm.weight)
    bias = getattr(norm, "bias", None)
    return replace(norm, weight=norm.weight / s, **({} if bias is None else {"bias": bias / s}))


def _attention_ctx(a: N.Attention, r: torch.Tensor, alpha: float) -> N.Attention:
    """V rows ÷ s, o columns × s; s per KV channel (each shared by the query heads of its group)."""
    group, d = a.num_heads // a.kv_heads, a.v.weight.shape[0] // a.kv_heads
    r_kv = r.reshape(a.kv_heads, group, d).amax(1).reshape(-1)
    w_kv = a.o.weight.abs().reshape(-1, a.kv_heads, group, d).amax(2).reshape(a.o.weight.shape[0], -1)
    s = factors(r_kv, [w_kv], alpha)
    s_ctx = s.reshape(a.kv_heads, 1, d).expand(a.kv_heads, group, d).reshape(-1)
    return replace(a, v=_rows(a.v, s), o=_cols(a.o, s_ctx))


def _block(b: N.Block, ranges: dict[str, torch.Tensor], alpha: float) -> N.Block:
    a, m = b.attn, b.mlp
    ln1, ln2 = b.ln1, b.ln2
    r = ranges.get(a.point(N.Role.ATTN_IN))
    if r is not None and a.q_norm is None and a.k_norm is None:
        s = factors(r, [a.q.weight, a.k.weight, a.v.weight], alpha)
        ln1, a = _norm(ln1, s), replace(a, q=_cols(a.q, s), k=_cols(a.k, s), v=_cols(a.v, s))
    r = ranges.get(a.point(N.Role.CTX))
    if r is not None and a.norm is None:
        a = _attention_ctx(a, r, alpha)
    r = ranges.get(m.point(N.Role.MLP_IN))
    if r is not None:
        s = factors(r, [m.fc1.weight] + ([] if m.gate is None else [m.gate.weight]), alpha)
        ln2, m = _norm(ln2, s), replace(m, fc1=_cols(m.fc1, s), gate=None if m.gate is None else _cols(m.gate, s))
    r = ranges.get(m.point(N.Role.GATED))
    if r is not None and m.gate is not None and m.norm is None:
        s = factors(r, [m.fc2.weight], alpha)
        m = replace(m, fc1=_rows(m.fc1, s), fc2=_cols(m.fc2, s))
    return replace(b, ln1=ln1, attn=a, ln2=ln2, mlp=m)


def smooth(graph: N.EncoderGraph, ranges: dict[str, torch.Tensor], alpha: float) -> N.EncoderGraph:
    """The graph with every foldable neuron layer's channels balanced (see the module docstring); post-LN blocks
    (whose norm output is the residual stream itself) and attention pooling are left as they are."""
    blocks = tuple(_block(b, ranges, alpha) if b.norm_first else b for b in graph.blocks)
    ro = graph.readout
    r = ranges.get(ro.point(N.Role.READOUT_IN))
    if r is not None and ro.proj is not None and ro.norm is not None and not ro.norm_after_pool \
            and ro.attn_pool is None:
        s = factors(r, [ro.proj.weight], alpha)
        ro = replace(ro, norm=_norm(ro.norm, s), proj=_cols(ro.proj, s))
    return replace(graph, blocks=blocks, readout=ro)

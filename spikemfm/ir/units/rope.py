"""Rotary position embedding (EVA02) as a float unit on the accumulated q / k current.

Over the head dimension d, for the tokens after the first ``prefix`` (class / register tokens are not rotated):

    float    y = x ⊙ cos[pos] + rot(x) ⊙ sin[pos],  rot(x) = [−x₁, x₀, −x₃, x₂, …]  (``half``: [−x_{d/2:}, x_{:d/2}])
    integer  y = (x · round(cos · 2^F) + rot(x) · round(sin · 2^F)) >> F

A fixed position-dependent rotation: linear, so it commutes with accumulation. Its node is
:class:`spikemfm.ir.nodes.Rope`.
"""
from __future__ import annotations

from typing import Any

import torch

from spikemfm.ir import nodes as N
from spikemfm.ir.units.base import UnitKind, round_int


def rotate(x: torch.Tensor, half: bool) -> torch.Tensor:
    """RoPE's rotation partner of x over the last axis: interleaved pairs, or the two halves."""
    if half:
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([-x2, x1], dim=-1)
    return torch.stack([-x[..., 1::2], x[..., ::2]], -1).reshape(x.shape)


class RopeKind(UnitKind):
    name = "rope"
    node = N.Rope
    per_step = "rotate the accumulated q/k current by its position"
    fp32_ops = (2, 1)  # x·cos + rot(x)·sin
    int_ops = (4, 0)  # x·cos, rot(x)·sin, +, >>F
    ops_note = "2 multiplies + 1 add (x·cos + rot(x)·sin)"
    lava = "RoPE rotates per-head q/k currents, which the Lava builder does not wire (whole token rows only)"

    def forward(self, node: N.Rope, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        head, tail = x[..., :node.prefix, :], x[..., node.prefix:, :]
        if tail.shape[-2] != node.sin.shape[0]:
            raise ValueError(f"{node.path}: {tail.shape[-2]} rotated tokens, the RoPE table has {node.sin.shape[0]}")
        out = tail * node.cos.to(x.dtype) + rotate(tail, node.half) * node.sin.to(x.dtype)
        return torch.cat([head, out], dim=-2)

    def fixed_params(self, node: N.Rope, frac_bits: int) -> dict[str, Any]:
        return {"sin": round_int(node.sin.to(torch.float64) * 2.0 ** frac_bits),
                "cos": round_int(node.cos.to(torch.float64) * 2.0 ** frac_bits)}

    def fixed(self, node: N.Rope, params: dict[str, Any], x: torch.Tensor, mask: torch.Tensor | None,
              frac_bits: int) -> torch.Tensor:
        head, tail = x[..., :node.prefix, :], x[..., node.prefix:, :]
        out = (tail * params["cos"] + rotate(tail, node.half) * params["sin"]) >> frac_bits
        return torch.cat([head, out], dim=-2)


KIND = RopeKind()

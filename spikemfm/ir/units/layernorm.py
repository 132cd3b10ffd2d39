"""LayerNorm as a float unit on the accumulated stream (its node is :class:`spikemfm.ir.nodes.LayerNorm`).

    float    y = (x − mean(x)) / sqrt(var(x) + eps) · w + b          over the last axis (length D)
    integer  m = ⌊Σx / D⌋, d = x − m, σ = isqrt(⌊Σd² / D⌋ + round(eps · 2^2F)),
             y = ⌊d · round(w · 2^F) / σ⌋ + round(b · 2^F)           (Q.F values)
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from spikemfm.ir import nodes as N
from spikemfm.ir.units.base import UnitKind, isqrt, round_int


class LayerNormKind(UnitKind):
    name = "layernorm"
    node = N.LayerNorm
    per_step = "mean/var/normalise of the accumulated stream"
    fp32_ops = (3, 4)  # mean, variance, normalise, affine: 3 multiplies + 4 adds per element (assumed)
    int_ops = (7, 2 + 32)  # Σx, x−m, d², Σd², d·w, ÷σ, +b per element; two ÷D and a 32-step isqrt per row
    ops_note = "4 adds + 3 multiplies (mean, variance, normalise, affine)"

    def forward(self, node: N.LayerNorm, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], node.weight.to(x.dtype), node.bias.to(x.dtype), node.eps)

    def fixed_params(self, node: N.LayerNorm, frac_bits: int) -> dict[str, Any]:
        f = frac_bits
        return {"w": round_int(node.weight.to(torch.float64) * 2.0 ** f),
                "b": round_int(node.bias.to(torch.float64) * 2.0 ** f),
                "eps": max(1, int(round(node.eps * 2.0 ** (2 * f))))}

    def fixed(self, node: N.LayerNorm, params: dict[str, Any], x: torch.Tensor, mask: torch.Tensor | None,
              frac_bits: int) -> torch.Tensor:
        d = x - torch.div(x.sum(-1, keepdim=True), x.shape[-1], rounding_mode="floor")
        var = torch.div((d * d).sum(-1, keepdim=True), x.shape[-1], rounding_mode="floor")
        return torch.div(d * params["w"], isqrt(var + params["eps"]), rounding_mode="floor") + params["b"]


KIND = LayerNormKind()

"""Masked softmax of attention scores as a float unit on the accumulated scores.

    float    p = softmax(s + M) over the last axis, M = −∞ on blocked pairs (causal and/or padding)
    integer  z = s − max(s), t = (z · round(log2(e) · 2^F)) >> F, k = t >> F, r = t − k·2^F,
             e = LUT[r] >> −k  (LUT[r] = round(2^(r/2^F) · 2^F)),  p = ⌊e · 2^F / Σe⌋,  blocked pairs p = 0
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from spikemfm.ir.units.base import UnitKind, round_int


@dataclass(frozen=True)
class Softmax:
    """The softmax of attention ``path`` ⟨attention⟩``.softmax`` (its scale 1/√d sits in the Q·Kᵀ product)."""

    path: str


@lru_cache(maxsize=4)
def exp_table(frac_bits: int) -> tuple[torch.Tensor, int]:
    """(LUT of 2^(r/2^F) in Q.F for r = 0 … 2^F − 1, round(log2(e) · 2^F)): shared by every softmax."""
    lut = round_int(torch.exp2(torch.arange(2 ** frac_bits, dtype=torch.float64) / 2 ** frac_bits) * 2.0 ** frac_bits)
    return lut, int(round(math.log2(math.e) * 2 ** frac_bits))


class SoftmaxKind(UnitKind):
    name = "softmax"
    node = Softmax
    per_step = "exp/normalise of accumulated scores"
    fp32_ops = (5, 5)  # exp as a degree-4 polynomial (4 × + 4 +), one add for the sum, one multiply by 1/Σ
    int_ops = (12, 0)  # max, s−top, ·log2e, >>F, k=t>>F, k<<F, t−(k<<F), LUT read, >>−k, Σe, e<<F, ÷Σe
    ops_note = "exp as a degree-4 polynomial (4 multiplies + 4 adds), one add for the sum, one multiply"
    delta = "scores"
    row_over_tokens = True  # a row of scores holds one entry per key

    def forward(self, node: Softmax, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            x = x.masked_fill(mask, float("-inf"))
        return torch.softmax(x, dim=-1)

    def fixed_params(self, node: Softmax, frac_bits: int) -> dict[str, Any]:
        lut, log2e = exp_table(frac_bits)
        return {"exp_lut": lut, "log2e": log2e}

    def fixed(self, node: Softmax, params: dict[str, Any], x: torch.Tensor, mask: torch.Tensor | None,
              frac_bits: int) -> torch.Tensor:
        f = frac_bits
        blocked = torch.zeros_like(x, dtype=torch.bool) if mask is None else mask.expand_as(x)
        top = torch.where(blocked, torch.iinfo(torch.int64).min // 4, x).amax(-1, keepdim=True)
        t = (torch.where(blocked, 0, x - top) * params["log2e"]) >> f
        k = t >> f
        e = params["exp_lut"][t - (k << f)] >> (-k).clamp(0, 62)
        e = torch.where(blocked, 0, e)
        return torch.div(e << f, e.sum(-1, keepdim=True).clamp_min(1), rounding_mode="floor")


KIND = SoftmaxKind()

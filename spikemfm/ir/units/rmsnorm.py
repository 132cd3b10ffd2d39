"""RMSNorm (LLaMA, Qwen2, AIMv2, timm ``RmsNorm``) as a float unit on the accumulated stream.

    float    y = x / sqrt(mean(x²) + eps) · w                        over the last axis (length D)
    integer  r = isqrt(⌊Σx² / D⌋ + round(eps · 2^2F)),  y = ⌊x · round(w · 2^F) / r⌋      (Q.F values)

Like LayerNorm without the mean and the bias: a float unit on accumulated input in the SNN, exact once its input
settles. Lava runs it through the generic float-unit process; NIR 1.0 has no normalisation node.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from spikemfm.ir.units.base import UnitKind, isqrt, round_int


@dataclass(frozen=True)
class RMSNorm:
    """y = x / sqrt(mean(x²) + eps) · w over the last dimension (``weight`` of shape (D,))."""

    path: str
    weight: torch.Tensor
    eps: float


class RMSNormKind(UnitKind):
    name = "rmsnorm"
    node = RMSNorm
    per_step = "mean-square/normalise of the accumulated stream"
    fp32_ops = (3, 1)  # x², ·rsqrt, ·w multiplies and the Σx² add per element (assumed)
    int_ops = (4, 1 + 32)  # x², Σx², x·w, ÷r per element; one ÷D and a 32-step isqrt per row
    ops_note = "3 multiplies + 1 add (x², Σx², ·1/r, ·w)"

    def forward(self, node: RMSNorm, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.rms_norm(x, x.shape[-1:], node.weight.to(x.dtype), node.eps)

    def fixed_params(self, node: RMSNorm, frac_bits: int) -> dict[str, Any]:
        return {"w": round_int(node.weight.to(torch.float64) * 2.0 ** frac_bits),
                "eps": max(1, int(round(node.eps * 2.0 ** (2 * frac_bits))))}

    def fixed(self, node: RMSNorm, params: dict[str, Any], x: torch.Tensor, mask: torch.Tensor | None,
              frac_bits: int) -> torch.Tensor:
        ms = torch.div((x * x).sum(-1, keepdim=True), x.shape[-1], rounding_mode="floor")
        return torch.div(x * params["w"], isqrt(ms + params["eps"]), rounding_mode="floor")


KIND = RMSNormKind()

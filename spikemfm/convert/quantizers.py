"""Quantizers: activation (spike) quantizers, per-channel weight quantization, range calibration."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from spikemfm.ir import nodes as N


@dataclass(frozen=True)
class ActQuant:
    """Uniform quantizer of a spiking activation.

    level(x) = clamp(⌊x / step + ½⌋, lo, hi);  value = level · step.
    Signed: lo = −hi, hi = 2^(b−1) − 1. Unsigned (attention probabilities): lo = 0, hi = 2^b − 1.
    The matching neuron is a signed IF with threshold ``step`` and initial membrane step/2 whose
    running spike count is bounded to [lo, hi]; its count converges to level(accumulated input).
    """

    point: str
    step: float
    lo: int
    hi: int
    bits: int

    @property
    def hi_abs(self) -> int:
        """The largest level magnitude, max(|lo|, |hi|)."""
        return max(abs(self.lo), abs(self.hi))

    def level(self, x: torch.Tensor) -> torch.Tensor:
        """Integer level (in x's float dtype) of x; in place after the division (it runs every SNN step)."""
        return (x / self.step).add_(0.5).floor_().clamp_(self.lo, self.hi)


@dataclass(frozen=True)
class QLinear:
    """A Linear with integer weights: y = (c W_intᵀ) · out_scale + b, c the integer input levels.

    out_scale[o] = in_step · w_scale[o]; the accumulation c W_intᵀ is exact in float64.
    ``bits`` is the widest row's bit width; ``row_bits`` (out,) is set when channel groups differ.
    """

    path: str
    w_int: torch.Tensor
    w_scale: torch.Tensor
    out_scale: torch.Tensor
    bias: torch.Tensor | None
    bits: int
    row_bits: torch.Tensor | None = None

    @property
    def total_bits(self) -> int:
        """Bits of all integer weights (per-row widths when channel groups differ)."""
        if self.row_bits is None:
            return self.w_int.numel() * self.bits
        return int(self.row_bits.sum()) * self.w_int.shape[1]

    def affine(self, acc: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Scales an integer accumulation to the output current, in ``dtype``."""
        y = acc.to(dtype, copy=True).mul_(self.out_scale.to(dtype))  # in place: one allocation, same values
        return y.add_(self.bias.to(dtype)) if self.bias is not None else y


def signed_range(bits: int) -> tuple[int, int]:
    """Symmetric signed level range of ``bits``."""
    hi = 2 ** (bits - 1) - 1
    return -hi, hi


def quantize_weight(w: torch.Tensor, bits: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel symmetric quantization: w ≈ w_int · scale[:, None]; ``bits`` per layer or per row."""
    hi = 2.0 ** (torch.as_tensor(bits, dtype=torch.float64) - 1) - 1
    w = w.to(torch.float64)
    amax = w.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / hi.expand_as(amax), torch.ones_like(amax))
    hi_rows = hi.expand(w.shape[0])[:, None]
    w_int = torch.clamp(torch.round(w / scale[:, None]), -hi_rows, hi_rows)
    return w_int, scale


def make_qlinear(node: N.Linear, in_step: float, bits: int | torch.Tensor) -> QLinear:
    """Quantizes a Linear node whose input levels have step ``in_step`` (``bits`` per layer or per row)."""
    w_int, w_scale = quantize_weight(node.weight, bits)
    bias = None if node.bias is None else node.bias.to(torch.float64)
    if isinstance(bits, torch.Tensor):
        return QLinear(node.path, w_int, w_scale, in_step * w_scale, bias, int(bits.max()), bits.clone())
    return QLinear(node.path, w_int, w_scale, in_step * w_scale, bias, bits)


def calibrate_step(samples: torch.Tensor, lo: int, hi: int, method: str, percentile: float) -> float:
    """Chooses the quantization step of an activation from calibration samples.

    ``max``: range = max |x|. ``percentile``: range = the |x| percentile. ``mse``: the range among
    60 candidates in [0.05, 1] · max |x| whose quantization has the least mean squared error.
    """
    x = samples.to(torch.float64).flatten()
    amax = float(x.abs().max()) if x.numel() else 0.0
    if amax == 0.0:
        return 1.0
    top = max(hi, -lo)
    if method == "max":
        return amax / top
    if method == "percentile":
        return float(torch.quantile(x.abs()[: 2 ** 24], percentile / 100.0)) / top or amax / top
    best, best_err = amax / top, float("inf")
    for frac in torch.linspace(0.05, 1.0, 60, dtype=torch.float64):
        step = float(frac) * amax / top
        err = float(((torch.clamp(torch.floor(x / step + 0.5), lo, hi) * step - x) ** 2).mean())
        if err < best_err:
            best, best_err = step, err
    return best

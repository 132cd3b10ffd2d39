"""The types of a converted model, below both :mod:`spikemfm.convert` (which builds them) and
:mod:`spikemfm.snn` (which runs them): activation quantizers (= neuron bounds and thresholds), integer
Linear parameters and the whole parameter set of a QANN / SNN.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


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
        """Integer level (in x's float dtype) of x; in place after the division (it runs every SNN step).

        Divides by θ as a 0-d tensor of x's dtype on x's device: a true IEEE division on every device (the same
        values as ``x / θ`` on the CPU; on CUDA ``x / θ`` with a Python float multiplies by 1/θ instead)."""
        step = torch.tensor(self.step, dtype=x.dtype, device=x.device)
        return torch.div(x, step).add_(0.5).floor_().clamp_(self.lo, self.hi)


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


@dataclass
class QParams:
    """All integer/quantization parameters of a QANN, keyed by quantization point or module path."""

    quants: dict[str, ActQuant] = field(default_factory=dict)
    linears: dict[str, QLinear] = field(default_factory=dict)
    luts: dict[str, torch.Tensor] = field(default_factory=dict)
    score_scales: dict[str, float] = field(default_factory=dict)
    ctx_scales: dict[str, float] = field(default_factory=dict)

    def product_bound(self, a_point: str, b_point: str, inner: int) -> float:
        """Bound on every partial sum of a product of the integer levels at two points over ``inner`` terms."""
        return float(self.quants[a_point].hi_abs) * self.quants[b_point].hi_abs * inner

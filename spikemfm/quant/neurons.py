"""The neuron law of a converted model: which counts a neuron may hold (the seam between the QANN's levels and
the spiking neurons that carry them).

Every runtime (step, time-batched, fixed point, Lava) asks the model's :class:`NeuronModel` for a layer's count
bounds instead of reading the quantizer's directly, so a different law (the naive unsigned baseline today,
sigma-delta neurons later) is a new class here, not an edit of the QANN's parameters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from spikemfm.quant.params import ActQuant


@dataclass(frozen=True)
class NeuronModel:
    """A neuron law: with S[t] the accumulated input and θ the quantizer's step, the count follows
    c[t] = c[t−1] + clip(clamp(⌊S[t]/θ + ½⌋, lo′, hi′) − c[t−1], −B, B), where (lo′, hi′) = ``bounds(q)``."""

    name: ClassVar[str] = ""

    def bounds(self, q: ActQuant) -> tuple[int, int]:
        """The count range (lo′, hi′) of a neuron layer whose quantizer is ``q``."""
        raise NotImplementedError

    def clamp_levels(self, q: ActQuant, levels: torch.Tensor) -> torch.Tensor:
        """Target levels (e.g. a lookup table's outputs at point ``q``) limited to the law's count range."""
        lo, hi = self.bounds(q)
        return levels if (lo, hi) == (q.lo, q.hi) else levels.clamp(lo, hi)


@dataclass(frozen=True)
class SignedIF(NeuronModel):
    """The signed bounded integrate-and-fire neuron (ST-BIF-style): counts in the quantizer's [lo, hi], so the
    accumulated output equals the QANN's."""

    name: ClassVar[str] = "signed_if"

    def bounds(self, q: ActQuant) -> tuple[int, int]:
        return q.lo, q.hi


@dataclass(frozen=True)
class UnsignedIF(NeuronModel):
    """spikingjelly's ``IFNode`` as a ReLU→IF converter uses it: no negative spikes, counts in [max(lo, 0), hi]
    (the naive baseline; the negative half of every signed activation is lost)."""

    name: ClassVar[str] = "unsigned_if"

    def bounds(self, q: ActQuant) -> tuple[int, int]:
        return max(q.lo, 0), max(q.hi, 0)


NEURON_MODELS: dict[str, NeuronModel] = {m.name: m for m in (SignedIF(), UnsignedIF())}

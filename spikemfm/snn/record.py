"""Per-layer, per-step activity counters of a simulation."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class NeuronStats:
    """Activity of one neuron layer, summed over the batch.

    Attributes:
        spikes: unit spikes per step (T,) (a graded/burst event of k counts as k).
        events: neurons that fired at least one spike, per step (T,).
        neurons: neurons of the layer per sample.
    """

    spikes: torch.Tensor
    events: torch.Tensor
    neurons: int


@dataclass
class SynapseStats:
    """Work of one synaptic layer or spike×spike product, summed over the batch.

    Attributes:
        ops: accumulate operations per step (T,): unit spikes × fan-out.
        event_ops: graded-event operations per step (T,): firing inputs × fan-out.
        kind: ``synapse`` (weights) or ``spike_product`` (two spike trains).
    """

    ops: torch.Tensor
    event_ops: torch.Tensor
    kind: str


@dataclass
class Recorder:
    """Collects per-step activity keyed by layer name; :meth:`finish` turns it into stats."""

    batch_size: int
    timesteps: int
    _neurons: dict[str, tuple[torch.Tensor, torch.Tensor, int]] = field(default_factory=dict)
    _synapses: dict[str, tuple[torch.Tensor, torch.Tensor, str]] = field(default_factory=dict)
    _last: tuple[int, float, float] | None = None  # (id(delta), spikes, events) of the last neuron step

    def _slot(self, table: dict, key: str, extra) -> tuple:
        if key not in table:
            table[key] = (torch.zeros(self.timesteps, dtype=torch.float64),
                          torch.zeros(self.timesteps, dtype=torch.float64), extra)
        return table[key]

    @staticmethod
    def _count(delta: torch.Tensor) -> tuple[float, float]:
        return float(delta.abs().sum()), float((delta != 0).sum())

    def neuron_step(self, point: str, t: int, delta: torch.Tensor) -> None:
        spikes, events, _ = self._slot(self._neurons, point, delta.numel() // self.batch_size)
        spikes[t], events[t] = counts = self._count(delta)
        self._last = (id(delta), *counts)

    def synapse_step(self, path: str, t: int, delta: torch.Tensor, fan_out: int) -> None:
        ops, ev, _ = self._slot(self._synapses, path, "synapse")
        # a synaptic layer's input is the last neuron layer's spikes: reuse its counts when it is that one
        sp, n = self._last[1:] if self._last and self._last[0] == id(delta) else self._count(delta)
        ops[t], ev[t] = sp * fan_out, n * fan_out

    def product_step(self, key: str, t: int, da: torch.Tensor, db: torch.Tensor, fan_a: int, fan_b: int) -> None:
        ops, ev, _ = self._slot(self._synapses, key, "spike_product")
        (sa, na), (sb, nb) = self._count(da), self._count(db)
        ops[t], ev[t] = sa * fan_a + sb * fan_b, na * fan_a + nb * fan_b

    def finish(self) -> tuple[dict[str, NeuronStats], dict[str, SynapseStats]]:
        neurons = {k: NeuronStats(s, e, n) for k, (s, e, n) in self._neurons.items()}
        synapses = {k: SynapseStats(o, e, kind) for k, (o, e, kind) in self._synapses.items()}
        return neurons, synapses

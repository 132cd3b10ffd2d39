"""Per-layer, per-step activity counters of a simulation."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


def _per_step(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).sum(1)


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
        ops: synaptic accumulate operations per step (T,): unit spikes × fan-out.
        event_ops: graded-event operations per step (T,): firing inputs × fan-out.
        kind: ``synapse`` (weights) or ``spike_product`` (two spike trains).
    """

    ops: torch.Tensor
    event_ops: torch.Tensor
    kind: str


@dataclass
class Recorder:
    """Collects :class:`NeuronStats` and :class:`SynapseStats` keyed by layer name."""

    batch_size: int
    neuron_stats: dict[str, NeuronStats] = field(default_factory=dict)
    synapse_stats: dict[str, SynapseStats] = field(default_factory=dict)

    def neurons(self, point: str, delta: torch.Tensor) -> None:
        per_sample = int(delta[0].numel() // self.batch_size)
        self.neuron_stats[point] = NeuronStats(_per_step(delta.abs()), _per_step((delta != 0).to(delta.dtype)),
                                               per_sample)

    def synapses(self, path: str, delta: torch.Tensor, fan_out: int) -> None:
        self.synapse_stats[path] = SynapseStats(_per_step(delta.abs()) * fan_out,
                                                _per_step((delta != 0).to(delta.dtype)) * fan_out, "synapse")

    def spike_products(self, path: str, da: torch.Tensor, db: torch.Tensor, fan_a: int, fan_b: int) -> None:
        ops = _per_step(da.abs()) * fan_a + _per_step(db.abs()) * fan_b
        ev = _per_step((da != 0).to(da.dtype)) * fan_a + _per_step((db != 0).to(db.dtype)) * fan_b
        self.synapse_stats[path] = SynapseStats(ops, ev, "spike_product")

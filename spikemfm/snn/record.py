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
        effective_ops: like ``ops`` but counting only non-zero weights (NeuroBench's effective ACs).
        effective_event_ops: like ``event_ops`` but counting only non-zero weights.
        kind: ``synapse`` (weights) or ``spike_product`` (two spike trains).
    """

    ops: torch.Tensor
    event_ops: torch.Tensor
    effective_ops: torch.Tensor
    effective_event_ops: torch.Tensor
    kind: str


@dataclass
class FloatUnitStats:
    """Evaluations of a float unit (softmax / LayerNorm) on accumulated input, summed over the batch.

    Attributes:
        elements: elements the unit evaluated per step (T,) (0 at steps whose input did not change).
        row: length of the row it normalises over.
        kind: ``softmax`` or ``layernorm``.
    """

    elements: torch.Tensor
    row: int
    kind: str


@dataclass
class Recorder:
    """Collects per-step activity keyed by layer name; :meth:`finish` turns it into stats."""

    batch_size: int
    timesteps: int
    _neurons: dict[str, tuple[torch.Tensor, torch.Tensor, int]] = field(default_factory=dict)
    _synapses: dict[str, tuple[torch.Tensor, ...]] = field(default_factory=dict)
    _floats: dict[str, tuple[torch.Tensor, int, str]] = field(default_factory=dict)
    _last: tuple[int, float, float] | None = None  # (id(delta), spikes, events) of the last neuron step

    def _slot(self, table: dict, key: str, extra, n: int = 2) -> tuple:
        if key not in table:
            table[key] = (*(torch.zeros(self.timesteps, dtype=torch.float64) for _ in range(n)), extra)
        return table[key]

    @staticmethod
    def _count(delta: torch.Tensor) -> tuple[float, float]:
        return float(delta.abs().sum()), float((delta != 0).sum())

    def neuron_step(self, point: str, t: int, delta: torch.Tensor) -> None:
        spikes, events, _ = self._slot(self._neurons, point, delta.numel() // self.batch_size)
        spikes[t], events[t] = counts = self._count(delta)
        self._last = (id(delta), *counts)

    def synapse_step(self, path: str, t: int, delta: torch.Tensor, fan_out: int, nnz_col: torch.Tensor) -> None:
        """Records a synaptic layer's work; ``nnz_col[j]`` = non-zero weights fed by input j."""
        ops, ev, eff, eff_ev, _ = self._slot(self._synapses, path, "synapse", 4)
        # a synaptic layer's input is the last neuron layer's spikes: reuse its counts when it is that one
        sp, n = self._last[1:] if self._last and self._last[0] == id(delta) else self._count(delta)
        ops[t], ev[t] = sp * fan_out, n * fan_out
        flat = delta.reshape(-1, delta.shape[-1])
        eff[t] = float((flat.abs().sum(0) * nnz_col).sum())
        eff_ev[t] = float(((flat != 0).sum(0).to(nnz_col.dtype) * nnz_col).sum())

    def product_step(self, key: str, t: int, da: torch.Tensor, db: torch.Tensor, fan_a: int, fan_b: int) -> None:
        ops, ev, eff, eff_ev, _ = self._slot(self._synapses, key, "spike_product", 4)
        (sa, na), (sb, nb) = self._count(da), self._count(db)
        ops[t] = eff[t] = sa * fan_a + sb * fan_b
        ev[t] = eff_ev[t] = na * fan_a + nb * fan_b

    def float_step(self, key: str, t: int, elements: int, row: int, kind: str) -> None:
        """Records a float unit's evaluation (``elements`` = 0 when its input did not change)."""
        el, _ = self._slot(self._floats, key, (row, kind), 1)
        el[t] = float(elements)

    def finish(self) -> tuple[dict[str, NeuronStats], dict[str, SynapseStats], dict[str, FloatUnitStats]]:
        neurons = {k: NeuronStats(s, e, n) for k, (s, e, n) in self._neurons.items()}
        synapses = {k: SynapseStats(*v) for k, v in self._synapses.items()}
        floats = {k: FloatUnitStats(el, row, kind) for k, (el, (row, kind)) in self._floats.items()}
        return neurons, synapses, floats

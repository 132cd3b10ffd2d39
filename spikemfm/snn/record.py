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


def _int_sum(t: torch.Tensor, bound: float, dim: int | None = None) -> torch.Tensor:
    """Sum of non-negative integers whose total is at most ``bound``, exactly and fast.

    float32 when the bound allows (exact below 2^24); otherwise a whole-tensor sum is taken per last-axis
    row in float32 (each row's bound is far smaller) and the row sums in float64 — a float64 reduction
    over a float32 tensor is ~30× slower on CPU.
    """
    if bound < 2 ** 24:
        return t.sum(dtype=torch.float32) if dim is None else t.sum(dim, dtype=torch.float32)
    if dim is None and t.dim() > 1 and bound / (t.numel() // t.shape[-1]) < 2 ** 24:
        return t.sum(-1, dtype=torch.float32).sum(dtype=torch.float64)
    return t.sum(dtype=torch.float64) if dim is None else t.sum(dim, dtype=torch.float64)


@dataclass
class Recorder:
    """Collects per-step activity keyed by layer name; :meth:`finish` turns it into stats."""

    batch_size: int
    timesteps: int
    _neurons: dict[str, tuple[torch.Tensor, torch.Tensor, int]] = field(default_factory=dict)
    _synapses: dict[str, tuple[torch.Tensor, ...]] = field(default_factory=dict)
    _floats: dict[str, tuple[torch.Tensor, int, str]] = field(default_factory=dict)
    _nnz_col: dict[str, tuple[torch.Tensor, bool]] = field(default_factory=dict)

    def _slot(self, table: dict, key: str, extra, n: int = 2) -> tuple:
        if key not in table:
            table[key] = (*(torch.zeros(self.timesteps, dtype=torch.float64) for _ in range(n)), extra)
        return table[key]

    def neuron_step(self, point: str, t: int, delta: torch.Tensor, max_step: float) -> tuple[float, float]:
        """Records a neuron layer's spikes; returns (unit spikes, firing neurons) of ``delta``.

        ``max_step`` bounds |delta| (1: binary spikes, so spikes = events).
        """
        spikes, events, _ = self._slot(self._neurons, point, delta.numel() // self.batch_size)
        # |delta| then a float sum, exact below 2^24 (count_nonzero / ne().sum() are 5-20× slower on CPU)
        a = delta.abs()
        s = float(_int_sum(a, delta.numel() * max_step))
        n = s if max_step == 1 else float(_int_sum(a.clamp_(max=1), delta.numel()))
        spikes[t], events[t] = s, n
        return s, n

    def synapse_step(self, path: str, t: int, delta: torch.Tensor, spikes: float, events: float,
                     w_int: torch.Tensor, max_step: float) -> None:
        """Records a synaptic layer's work for input spikes ``delta`` (whose totals the neuron layer counted)."""
        ops, ev, eff, eff_ev, _ = self._slot(self._synapses, path, "synapse", 4)
        if path not in self._nnz_col:  # nnz_col[j] = non-zero weights fed by input j
            nnz = (w_int != 0).sum(0).to(torch.float64)
            self._nnz_col[path] = (nnz, bool((nnz == w_int.shape[0]).all()))
        nnz_col, dense = self._nnz_col[path]
        fan_out = w_int.shape[0]
        ops[t], ev[t] = spikes * fan_out, events * fan_out
        if dense or events == 0:
            eff[t], eff_ev[t] = ops[t], ev[t]
            return
        a = delta.reshape(-1, delta.shape[-1]).abs()
        eff[t] = float(_int_sum(a, a.shape[0] * max_step, dim=0).to(torch.float64) @ nnz_col)
        eff_ev[t] = eff[t] if max_step == 1 else float(
            _int_sum(a.clamp_(max=1), a.shape[0], dim=0).to(torch.float64) @ nnz_col)

    def product_step(self, key: str, t: int, a: tuple[float, float], b: tuple[float, float],
                     fan_a: int, fan_b: int) -> None:
        """Records a spike×spike product from its operands' (spikes, events) this step."""
        ops, ev, eff, eff_ev, _ = self._slot(self._synapses, key, "spike_product", 4)
        ops[t] = eff[t] = a[0] * fan_a + b[0] * fan_b
        ev[t] = eff_ev[t] = a[1] * fan_a + b[1] * fan_b

    def float_step(self, key: str, t: int, elements: int, row: int, kind: str) -> None:
        """Records a float unit's evaluation (``elements`` = 0 when its input did not change)."""
        el, _ = self._slot(self._floats, key, (row, kind), 1)
        el[t] = float(elements)

    def finish(self) -> tuple[dict[str, NeuronStats], dict[str, SynapseStats], dict[str, FloatUnitStats]]:
        neurons = {k: NeuronStats(s, e, n) for k, (s, e, n) in self._neurons.items()}
        synapses = {k: SynapseStats(*v) for k, v in self._synapses.items()}
        floats = {k: FloatUnitStats(el, row, kind) for k, (el, (row, kind)) in self._floats.items()}
        return neurons, synapses, floats

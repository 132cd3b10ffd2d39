"""Per-layer, per-step activity counters of a simulation."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch


@dataclass
class NeuronStats:
    """Activity of one neuron layer, summed over the batch.

    Attributes:
        spikes: unit spikes per step (T,) (a graded/burst event of k counts as k).
        events: neurons that fired at least one spike, per step (T,).
        neurons: neurons of the layer per sample.
        updates: with ``count_updates``: neurons an event-driven chip updates per step (T,): those whose input
            current changed at that step or that fired (the others neither integrate nor emit anything); None
            when not counted. A neuron whose incoming events cancel exactly has an unchanged input and is not
            counted, so on synaptic inputs this is a lower bound of what hardware taking events one by one does.
    """

    spikes: torch.Tensor
    events: torch.Tensor
    neurons: int
    updates: torch.Tensor | None = None


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


def _int_sum(t: torch.Tensor, bound: float, dim: int) -> torch.Tensor:
    """Sums over ``dim`` of non-negative integers, each sum at most ``bound``, exactly: in float32 below 2^24
    (a float64 reduction over a float32 tensor is ~30× slower on CPU), else in float64."""
    return t.sum(dim, dtype=torch.float32 if bound < 2 ** 24 else torch.float64)


def _step_sums(a: torch.Tensor, max_step: float) -> torch.Tensor:
    """Per-step totals (L,) float64 of non-negative integers a (L, ..., D), each at most ``max_step``."""
    steps = a.shape[0]
    if a[0].numel() * max_step < 2 ** 24:
        return a.reshape(steps, -1).sum(1, dtype=torch.float32).to(torch.float64)
    rows = a.reshape(steps, -1, a.shape[-1])  # a float64 reduction over float32 is ~30× slower on CPU:
    if rows.shape[2] * max_step < 2 ** 24:     # exact float32 row sums, then float64 over rows
        return rows.sum(2, dtype=torch.float32).sum(1, dtype=torch.float64)
    return rows.sum((1, 2), dtype=torch.float64)


@dataclass
class Recorder:
    """Collects per-step activity keyed by layer name; :meth:`finish` turns it into stats."""

    batch_size: int
    timesteps: int
    _neurons: dict[str, tuple[np.ndarray, np.ndarray, int]] = field(default_factory=dict)
    _synapses: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)
    _floats: dict[str, tuple[np.ndarray, int, str]] = field(default_factory=dict)
    _nnz_col: dict[str, tuple[torch.Tensor, bool]] = field(default_factory=dict)
    moved: np.ndarray | None = None  # (T, B): some neuron of the sample moved at that step (settle tracking)
    updates: dict[str, np.ndarray] | None = None  # point -> neurons updated per step (``count_updates``)

    def track_updates(self) -> None:
        """Counts, per neuron layer and step, the neurons whose input changed or that fired
        (:attr:`NeuronStats.updates`)."""
        self.updates = {}

    def neuron_updates(self, point: str, t0: int, changed: torch.Tensor, fired: torch.Tensor) -> None:
        """Records the neurons updated at steps t0 … t0+L−1 from two masks (L, ...) of one layout: input changed,
        fired. Exact: boolean sums (L ≤ T rows of at most 2^53 neurons) in int64."""
        if self.updates is None:
            return
        series = self.updates.get(point)
        if series is None:  # not setdefault: it would allocate a fresh array at every step
            series = self.updates[point] = np.zeros(self.timesteps)
        n = changed.logical_or(fired).reshape(changed.shape[0], -1).sum(1)
        series[t0:t0 + changed.shape[0]] = n.cpu().numpy()

    def track_samples(self) -> None:
        """Records, per step and sample, whether any neuron of the network moved (for settle detection)."""
        self.moved = np.zeros((self.timesteps, self.batch_size), dtype=bool)

    def samples_moved(self, t0: int, counts: torch.Tensor, prev: torch.Tensor | None) -> None:
        """Marks the samples whose counts changed: ``counts`` (L, B, ...) after steps t0 … t0+L−1, ``prev``
        (B, ...) before step t0 (None: all zero)."""
        if self.moved is None:
            return
        steps, b = counts.shape[0], self.batch_size
        now = counts.reshape(steps, b, -1)
        before = torch.zeros_like(now[:1]) if prev is None else prev.reshape(1, b, -1).to(now.dtype)
        both = torch.cat([before, now])
        changed = both[1:].ne(both[:-1]).any(2)
        self.moved[t0:t0 + steps] |= changed.cpu().numpy()

    def _slot(self, table: dict, key: str, extra, n: int = 2) -> tuple:
        # numpy, not torch, while recording: a scalar store into a torch tensor costs ~5 µs, into numpy ~0.1 µs
        if key not in table:
            table[key] = (*(np.zeros(self.timesteps) for _ in range(n)), extra)
        return table[key]

    def _weights_per_input(self, path: str, w_int: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """(nnz_col, dense): nnz_col[j] = non-zero weights fed by input j; dense: no zero weight."""
        if path not in self._nnz_col:
            nnz = (w_int != 0).sum(0).to(torch.float64)
            self._nnz_col[path] = (nnz, bool((nnz == w_int.shape[0]).all()))
        return self._nnz_col[path]

    def neuron_steps(self, point: str, t0: int, delta: torch.Tensor,
                     max_step: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Records a neuron layer's spikes ``delta`` (L, ...) of steps t0 … t0+L−1.

        Returns (unit spikes, firing neurons) per step, (L,) float64. ``max_step`` bounds |delta|
        (1: binary spikes, so spikes = events).
        """
        steps = delta.shape[0]
        spikes, events, _ = self._slot(self._neurons, point, delta[0].numel() // self.batch_size)
        # |delta| then float sums, exact below 2^24 (count_nonzero / ne().sum() are 5-20× slower on CPU)
        a = delta.abs()
        s = _step_sums(a, max_step)
        n = s if max_step == 1 else _step_sums(a.clamp_(max=1), 1.0)
        spikes[t0:t0 + steps], events[t0:t0 + steps] = s.numpy(), n.numpy()
        return s, n

    def synapse_steps(self, path: str, t0: int, delta: torch.Tensor, spikes: torch.Tensor, events: torch.Tensor,
                      w_int: torch.Tensor, max_step: float) -> None:
        """Records a synaptic layer's work for input spikes ``delta`` (L, ..., in) of steps t0 … t0+L−1,
        whose per-step totals (spikes, events) the neuron layer counted."""
        steps = delta.shape[0]
        ops, ev, eff, eff_ev, _ = self._slot(self._synapses, path, "synapse", 4)
        nnz_col, dense = self._weights_per_input(path, w_int)
        fan_out = w_int.shape[0]
        span = slice(t0, t0 + steps)
        ops[span], ev[span] = (spikes * fan_out).numpy(), (events * fan_out).numpy()
        if dense or not bool(events.any()):
            eff[span], eff_ev[span] = ops[span], ev[span]
            return
        a = delta.reshape(steps, -1, delta.shape[-1]).abs()
        eff[span] = (_int_sum(a, a.shape[1] * max_step, dim=1).to(torch.float64) @ nnz_col).numpy()
        eff_ev[span] = eff[span] if max_step == 1 else \
            (_int_sum(a.clamp_(max=1), a.shape[1], dim=1).to(torch.float64) @ nnz_col).numpy()

    def product_steps(self, key: str, t0: int, a: tuple[torch.Tensor, torch.Tensor],
                      b: tuple[torch.Tensor, torch.Tensor], fan_a: int, fan_b: int) -> None:
        """Records a spike×spike product from its operands' per-step (spikes, events), steps t0 … t0+L−1."""
        ops, ev, eff, eff_ev, _ = self._slot(self._synapses, key, "spike_product", 4)
        span = slice(t0, t0 + a[0].shape[0])
        ops[span] = eff[span] = (a[0] * fan_a + b[0] * fan_b).numpy()
        ev[span] = eff_ev[span] = (a[1] * fan_a + b[1] * fan_b).numpy()

    def float_steps(self, key: str, t0: int, elements: list[int], row: int, kind: str) -> None:
        """Records a float unit's evaluations at steps t0 … (``elements`` = 0 where its input did not change)."""
        el, _ = self._slot(self._floats, key, (row, kind), 1)
        el[t0:t0 + len(elements)] = elements

    def neuron_totals(self, point: str, t: int, spikes: float, events: float, neurons: int) -> None:
        """Records a neuron layer's step from its totals: unit spikes and firing neurons over the batch.

        ``neurons``: neurons of the layer over the whole batch.
        """
        s, e, _ = self._slot(self._neurons, point, neurons // self.batch_size)
        s[t], e[t] = spikes, events

    def synapse_totals(self, path: str, t: int, spikes: float, events: float, col_spikes: torch.Tensor,
                       col_events: torch.Tensor, w_int: torch.Tensor) -> None:
        """Records a synaptic layer's step from its input layer's totals.

        ``col_spikes`` / ``col_events`` (in,): unit spikes / firing neurons per input column, over rows.
        """
        ops, ev, eff, eff_ev, _ = self._slot(self._synapses, path, "synapse", 4)
        nnz_col, dense = self._weights_per_input(path, w_int)
        fan_out = w_int.shape[0]
        ops[t], ev[t] = spikes * fan_out, events * fan_out
        if dense or events == 0:
            eff[t], eff_ev[t] = ops[t], ev[t]
        else:
            eff[t], eff_ev[t] = float(col_spikes @ nnz_col), float(col_events @ nnz_col)

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
        t = torch.from_numpy
        ups = self.updates
        neurons = {k: NeuronStats(t(s), t(e), n, None if ups is None else t(ups.get(k, np.zeros(self.timesteps))))
                   for k, (s, e, n) in self._neurons.items()}
        synapses = {k: SynapseStats(*map(t, v[:4]), v[4]) for k, v in self._synapses.items()}
        floats = {k: FloatUnitStats(t(el), row, kind) for k, (el, (row, kind)) in self._floats.items()}
        return neurons, synapses, floats


def per_step_fields(stats: Any) -> tuple[str, ...]:
    """The per-step series a layer's statistics carry (``updates`` only when the run counted them)."""
    return tuple(f for f in _PER_STEP[type(stats)] if getattr(stats, f) is not None)


def cut_stats(stats: dict[str, Any], steps: slice) -> dict[str, Any]:
    """Per-layer statistics with their per-step series cut to the ``steps`` slice."""
    return {k: replace(v, **{f: getattr(v, f)[steps] for f in per_step_fields(v)}) for k, v in stats.items()}


_PER_STEP = {NeuronStats: ("spikes", "events", "updates"), SynapseStats: ("ops", "event_ops", "effective_ops",
                                                                "effective_event_ops"),
             FloatUnitStats: ("elements",)}

"""Time-batched simulation: every layer runs all steps of a chunk of time steps at once.

The same neurons, values and per-step statistics as the step-by-step runtime
(:class:`~spikemfm.snn.ops.SNNStepOps`), computed layer by layer over a chunk of L steps instead of
step by step over the whole tower (the multi-step mode of spikingjelly): a tensor carries a leading
time axis of L steps, or of 1 when it is constant over the chunk (the analog input current).

- a neuron layer computes its targets level(S[t]) for all L steps in one pass, then follows them
  with at most B spikes per step (:func:`~spikemfm.snn.neuron.bounded_follow`, carried over chunks);
- a synaptic layer's accumulated current after step t is Σ_{τ≤t} ΔC[τ]·W_intᵀ = C[t]·W_intᵀ: one exact
  integer GEMM over all L steps (int8 × int8 → int32 where it fits), the work charged per spike
  event as in the step runtime;
- spike×spike products, softmax and LayerNorm run over all steps at once; a step whose operands did
  not change is not recomputed (it repeats the previous step's output) and is not charged.

Fewer, larger kernels and no per-step Python — but on a CPU the chunk's tensors fall out of cache and
each op is a separate memory pass, so the step runtime with its fused neuron kernels is faster here
(``benchmarks/simulation_speed.py`` times both). It stays as the second, independent implementation
the step runtime is tested against (same outputs and statistics), and as the formulation that suits
wide accelerators.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch

from spikemfm.quant import exact
from spikemfm.quant.neurons import NeuronModel, SignedIF
from spikemfm.quant.params import QParams
from spikemfm.ir import nodes as N
from spikemfm.ir import units
from spikemfm.ir.netlist import Netlist
from spikemfm.snn.ops import SpikeOpsBase
from spikemfm.snn.record import Recorder

Slices = Callable[[list[int] | None], torch.Tensor]  # fn(step indices, or None for all) -> output slices


class _ChunkFired(NamedTuple):
    """A neuron layer's spikes over a chunk: delta (L, ...), its name, per-step (spikes, events) (L,)."""

    delta: torch.Tensor
    point: str
    spikes: torch.Tensor
    events: torch.Tensor


class TimeBatchOps(SpikeOpsBase):
    """Engine ops over a chunk of steps; call :meth:`next_chunk` before each engine run."""

    def __init__(self, qp: QParams, net: Netlist, max_spikes: int | None, recorder: Recorder,
                 dtype: torch.dtype = torch.float64, law: NeuronModel = SignedIF()) -> None:
        self._wire(qp, net, law)
        self.max_spikes = max_spikes
        self.rec = recorder
        self.dtype = dtype
        self.t0, self.steps = 0, 0
        self.counts: dict[str, torch.Tensor] = {}  # point -> count after the last step of the previous chunk
        self.fired: dict[str, _ChunkFired] = {}  # point -> what the layer fired this chunk
        self.activity: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # point -> (spikes, events) (L,)
        self.last_in: dict[str, torch.Tensor] = {}  # float unit -> its input at the previous step
        self.last_out: dict[str, torch.Tensor] = {}  # unit -> its output at the previous step
        self.weights: dict[str, torch.Tensor] = {}
        self.luts: dict[str, torch.Tensor] = {}
        self.last_input: dict[str, torch.Tensor] = {}  # point -> its input at the previous step (updates)

    def next_chunk(self, t0: int, steps: int) -> None:
        """Starts the chunk of steps t0 … t0+steps−1."""
        self.t0, self.steps = t0, steps
        self.fired.clear()
        self.activity.clear()

    def inject(self, x: torch.Tensor) -> torch.Tensor:
        return x[None]  # the analog input current arrives at step 1 and stays: constant over every chunk

    def _follow(self, point: str, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Counts (L, ...) following ``target`` (L or 1, ...) from the carried count, and their deltas."""
        shape = (self.steps, *target.shape[1:])
        prev = self.counts.get(point)
        if self.max_spikes is None:  # graded: the count jumps to its target
            counts = target.expand(shape)
            delta = torch.empty(shape)
            torch.sub(counts[0], prev, out=delta[0]) if prev is not None else delta[0].copy_(counts[0])
            torch.sub(counts[1:], counts[:-1], out=delta[1:])
            return counts, delta
        counts, delta = torch.empty(shape), torch.empty(shape)
        c = prev if prev is not None else torch.zeros(shape[1:])
        for t in range(self.steps):  # c[t] = c[t−1] + clip(target[t] − c[t−1], −B, B)
            torch.sub(target[t if target.shape[0] > 1 else 0], c, out=delta[t]).clamp_(-self.max_spikes,
                                                                                     self.max_spikes)
            c = torch.add(c, delta[t], out=counts[t])
        return counts, delta

    def _updates(self, point: str, current: torch.Tensor, delta: torch.Tensor) -> None:
        """Records, per step of the chunk, the neurons whose input ``current`` (L or 1, ...) changed or that
        fired (``delta`` (L, ...))."""
        last = self.last_input.get(point)
        both = torch.cat([torch.zeros_like(current[:1]) if last is None else last[None], current])
        changed = torch.zeros(delta.shape, dtype=torch.bool)
        changed[:current.shape[0]] = both[1:].ne(both[:-1])  # a (1, ...) current is constant over the chunk
        self.last_input[point] = current[-1].clone()
        self.rec.neuron_updates(point, self.t0, changed, delta.ne(0))

    def _neuron(self, point: str, target: torch.Tensor, current: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's counts following ``target``; ``current``: its input when the recorder counts updates
        (None: the target itself is the input, as for a lookup neuron)."""
        counts, delta = self._follow(point, target)
        if self.rec.updates is not None:
            self._updates(point, target if current is None else current, delta)
        self.rec.samples_moved(self.t0, counts, self.counts.get(point))
        self.counts[point] = counts[-1].clone()
        spikes, events = self.rec.neuron_steps(point, self.t0, delta, self._max_step(point))
        self.activity[point] = (spikes, events)
        self.fired[point] = _ChunkFired(delta, point, spikes, events)
        return counts

    def neuron(self, point: str, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.bounds[point]
        return self._neuron(point, self.qp.quants[point].level(x).clamp_(lo, hi).to(torch.float32), x)

    def _fill(self, key: str, changed: list[bool], fn: Slices) -> torch.Tensor:
        """fn on the steps whose flag is set; every other step repeats the previous step's output."""
        last = self.last_out.get(key)
        if last is None:
            changed = [True, *changed[1:]]  # nothing to repeat before the first evaluation
        if all(changed):
            out = fn(None)
        else:
            idx = [i for i, c in enumerate(changed) if c]
            pos = torch.tensor(changed).cumsum(0)  # 0 = the previous chunk's last output
            if last is None:
                out = fn(idx)[pos - 1]
            else:
                out = torch.cat([last[None], fn(idx)])[pos] if idx else last[None].expand(len(changed), *last.shape)
        self.last_out[key] = out[-1]
        return out

    def linear(self, node: N.Linear, c: torch.Tensor) -> torch.Tensor:
        ql = self.qp.linears[node.path]
        fired = self.fired[self.pre[node.path]]
        self.rec.synapse_steps(node.path, self.t0, fired.delta, fired.spikes, fired.events, ql.w_int,
                               self._max_step(fired.point))
        w = self.weights.get(node.path)
        if w is None:  # C[t]·W_intᵀ: operands bounded by the count range
            hi = float(self.qp.quants[fired.point].hi_abs)
            w = self.weights[node.path] = exact.weight_operand(ql.w_int, hi, hi)

        def acc(idx: list[int] | None) -> torch.Tensor:
            sel = c if idx is None else c[idx]
            out = exact.matmul(sel.reshape(-1, sel.shape[-1]), w).reshape(*sel.shape[:-1], -1)
            return ql.affine(out, self.dtype)
        return self._fill(node.path, (fired.events > 0).tolist(), acc)

    def _product(self, key: str, points: tuple[str, str], a: torch.Tensor, b: torch.Tensor, scale: float,
                 elementwise: bool = False) -> torch.Tensor:
        (sa, na), (sb, nb) = (self.activity[p] for p in points)
        fans = (1, 1) if elementwise else (b.shape[-1], a.shape[-2])
        self.rec.product_steps(key, self.t0, (sa, na), (sb, nb), fan_a=fans[0], fan_b=fans[1])
        bound = self.qp.product_bound(*points, a.shape[-1])

        def prod(idx: list[int] | None) -> torch.Tensor:
            pa, pb = (a, b) if idx is None else (a[idx], b[idx])
            exact_ab = exact.elementwise(pa, pb) if elementwise else exact.product(pa, pb, bound)
            return exact_ab.to(self.dtype) * scale
        return self._fill(key, ((na + nb) > 0).tolist(), prod)

    def activation(self, mlp: N.MLP, z: torch.Tensor) -> torch.Tensor:
        c = self.neuron(mlp.point(N.Role.HIDDEN), z)
        lut = self.luts.get(mlp.path)
        if lut is None:
            lut = self.luts[mlp.path] = self._lut(mlp)
        idx = (c - self.qp.quants[mlp.point(N.Role.HIDDEN)].lo).to(torch.int32)
        return self._neuron(mlp.point(N.Role.ACT), lut.index_select(0, idx.view(-1)).view(c.shape))

    def _float_unit(self, key: str, kind: str, x: torch.Tensor,
                    fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """A float unit on accumulated input x (L or 1, ...), evaluated where x changed since the step before."""
        prev = self.last_in.get(key)
        # torch.equal stops at the first difference: nearly free where the input changed
        changed = [not torch.equal(x[i], x[i - 1] if i else prev) if (i or prev is not None) else True
                   for i in range(x.shape[0])]
        self.last_in[key] = x[-1]
        per_step = x[0].numel()
        elements = [per_step if c else 0 for c in changed] + [0] * (self.steps - x.shape[0])
        self.rec.float_steps(key, self.t0, elements, x.shape[-1], kind)
        return self._fill(key, changed, lambda idx: fn(x if idx is None else x[idx]))

    def unit(self, node: Any, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """A float unit on accumulated input (its kind's float function) over the chunk's steps."""
        kind = units.kind_of(node)
        return self._float_unit(node.path, kind.name, x, lambda v: kind.forward(node, v, mask))

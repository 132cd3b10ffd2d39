"""Step-by-step spiking semantics of the engine's ops, with per-layer state.

``simulate`` runs the engine once per time step; this object keeps every layer's state between
steps: the running spike count of each neuron layer, the accumulated synaptic current of each
synaptic layer, the running operands of each spike×spike product. Per step:

- a neuron layer moves its count toward level(accumulated input) by at most B spikes (signed IF,
  see :mod:`spikemfm.snn.neuron`) and records the spikes it fired;
- a synaptic layer is event-driven: only inputs that spiked this step add their weight columns
  (ΔC·W_intᵀ, an exact integer accumulation) to the accumulated current;
- Q·Kᵀ and A·V are products of two running spike counts; the work the incremental form
  ΔQ·K_{t−1}ᵀ + Q_t·ΔKᵀ needs is recorded, the product itself is exact in integers;
- float units (softmax, LayerNorm, RoPE, … — :mod:`spikemfm.ir.units`) evaluate their float function on the
  accumulated input; a unit whose input
  did not change since the last step is not re-evaluated (its output cannot change either).

Speed without changing a single value: each neuron layer's step is one fused pass
(:mod:`spikemfm.snn.kernels`: target level, bounded move, new count in the narrowest integer dtype — int8 at
8 bits —, spike totals, and per-column totals and active rows only where a synaptic layer reads the layer),
which every consumer (settling test, synapse and product work, sparse rows) reuses. A synaptic layer that
drives a neuron layer directly (q, k, v, fc1) is fused into it (:meth:`SNNStepOps.linear_neuron`: the float
current is never written), and q/k/v counts are written split into heads, as Q·Kᵀ and A·V read them.
Synaptic layers use int8 × int8 → int32 GEMMs where counts/deltas and weights fit, otherwise exact
float32/float64 (:mod:`spikemfm.quant.exact`); the float path (currents, LayerNorm, softmax, scales) runs
in the QANN's precision, float64 or float32, exactly as the QANN does. A cached output is released before its
replacement is computed, so the allocator reuses the memory instead of growing the heap (page faults cost
about as much as the neuron passes did on this 2-core machine).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch

from spikemfm.quant import exact
from spikemfm.quant.neurons import NeuronModel, SignedIF
from spikemfm.quant.params import QParams
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.ir import units
from spikemfm.ir.units.product import Product
from spikemfm.ir.netlist import Netlist, SpikeProduct, SynapticLayer
from spikemfm.snn import kernels, kernels_torch
from spikemfm.snn.record import Recorder



class _Fired(NamedTuple):
    """What a neuron layer emitted this step (see :class:`~spikemfm.snn.kernels.Fired`) and its name."""

    step: kernels.Fired
    point: str


class SpikeOpsBase:
    """What both runtimes (this one and :class:`~spikemfm.snn.timebatch.TimeBatchOps`) share: the wiring read
    from the netlist (each synaptic layer's presynaptic neuron layer, each product's operands), the neuron law's
    count bounds, per-step spike bounds and the spike×spike products, which each runtime's ``_product``
    evaluates."""

    qp: QParams
    max_spikes: int | None

    def _wire(self, qp: QParams, net: Netlist, law: NeuronModel) -> None:
        self.qp, self.law = qp, law
        self.pre = {s.name: s.pre for s in net.of(SynapticLayer)}  # synaptic layer -> presynaptic neuron layer
        self.read_by_synapses = frozenset(self.pre.values())  # these need per-column totals and active rows
        self.operands = {r.name: (r.inputs[0], r.inputs[1]) for r in net.of(SpikeProduct)}
        self.bounds = {p: law.bounds(q) for p, q in qp.quants.items()}  # point -> count range (lo, hi)

    def _level_span(self, point: str) -> float:
        b = self.bounds.get(point)
        return float(b[1] - b[0]) if b is not None else float("inf")

    def _max_step(self, point: str) -> float:
        """Bound on |spikes| of one neuron in one step: B, or the whole level range when graded."""
        if self.max_spikes is not None:
            return float(self.max_spikes)
        return self._level_span(point)

    def _lut(self, mlp: N.MLP) -> torch.Tensor:
        """The activation's table of output levels (float32), limited to the act neurons' count range."""
        return self.law.clamp_levels(self.qp.quants[mlp.point(N.Role.ACT)],
                                     self.qp.luts[mlp.path]).to(torch.float32).contiguous()

    def _product(self, key: str, points: tuple[str, str], a: torch.Tensor, b: torch.Tensor, scale: float,
                 elementwise: bool = False) -> torch.Tensor:
        """a @ b (or a ⊙ b) of two running spike counts, scaled; records the work per spike of either train."""
        raise NotImplementedError

    def product(self, node: Product, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """A spike×spike product of two running counts (its kind: :mod:`spikemfm.ir.units.product`)."""
        kind = units.product_kind(node)
        return self._product(node.path, self.operands[node.path], *kind.operands(a, b), kind.level_scale(self.qp, node),
                             kind.elementwise)


class SNNStepOps(SpikeOpsBase):
    """Engine ops for one time step at a time; call :meth:`next_step` before each engine run."""

    def __init__(self, qp: QParams, net: Netlist, max_spikes: int | None, recorder: Recorder,
                 dtype: torch.dtype = torch.float64, law: NeuronModel = SignedIF(), fused: bool = True) -> None:
        """``fused``: the numba neuron kernels (CPU tensors only); False: the same steps in plain torch
        (:mod:`spikemfm.snn.kernels_torch`), on any device."""
        self._wire(qp, net, law)
        self.kern = kernels if fused else kernels_torch
        self.dtype = dtype  # precision of the float path (the QANN's)
        self.max_spikes = max_spikes
        self.rec = recorder
        self.t = -1
        self.counts: dict[str, torch.Tensor] = {}
        self.fired: dict[str, _Fired] = {}  # point -> its increment this step (layers that fired)
        self.step_activity: dict[str, tuple[float, float]] = {}  # point -> (spikes, events) this step
        self.acc: dict[str, torch.Tensor] = {}
        self.cache: dict[str, tuple[tuple[torch.Tensor, ...], torch.Tensor]] = {}
        self.w_acc: dict[tuple[str, bool], torch.Tensor] = {}  # (path, for counts) -> W_intᵀ
        self.luts: dict[str, torch.Tensor] = {}  # MLP path -> output levels per input level (float32)
        self.settled: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # point -> (input, count) at rest
        self.outputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # synapse path -> (count, current)
        self.inputs: dict[str, torch.Tensor] = {}  # synapse path -> the input counts its ``acc`` is for
        self.affines: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}  # path -> (scale, bias)
        self.head_major: set[str] = set()  # points whose counts are kept as (..., H, N, d)
        self.last_input: dict[str, torch.Tensor] = {}  # point -> its input current at its last update (updates)

    def layer_counts(self) -> dict[str, torch.Tensor]:
        """Every neuron layer's running counts, in the engine's layout (..., N, D) (attention operands are
        kept split into heads (..., H, N, d) and merged back here)."""
        return {k: engine.merge_heads(v) if k in self.head_major else v for k, v in self.counts.items()}

    def next_step(self) -> None:
        self.t += 1
        self.fired.clear()
        self.step_activity.clear()

    def inject(self, x: torch.Tensor) -> torch.Tensor:
        return x  # the analog input current arrives at step 1; its accumulation stays constant

    def _float_unit(self, key: str, kind: str, x: torch.Tensor, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        hit = self.cache.get(key)
        if hit is not None and (hit[0][0] is x or torch.equal(hit[0][0], x)):
            self.rec.float_step(key, self.t, 0, x.shape[-1], kind)
            return hit[1]
        self.rec.float_step(key, self.t, x.numel(), x.shape[-1], kind)
        hit = self.cache.pop(key, None)  # let go of the old output before making the new one: the
        del hit  # allocator then reuses its memory instead of growing the heap (page faults)
        out = fn()
        self.cache[key] = ((x,), out)
        return out

    def _at_rest(self, point: str, x: torch.Tensor) -> torch.Tensor | None:
        """The count object of a neuron layer whose input is the very tensor it settled on (no spikes)."""
        rest = self.settled.get(point)
        return rest[1] if rest is not None and rest[0] is x else None

    def _fire(self, point: str, x: torch.Tensor, step: Callable[[torch.Tensor | None], kernels.Fired],
              current: Callable[[], torch.Tensor] | None = None, heads: bool = False) -> torch.Tensor:
        """Moves the layer's count toward its target by one step of the fused kernel ``step(prev)``.

        ``current()``: the neurons' input current when it is not ``x`` (fused layers: x is the presynaptic
        counts), only computed when the recorder counts updates; ``heads``: the counts are head-major while
        that current is (rows, D)."""
        prev = self.counts.get(point)
        fired = step(prev)
        self.rec.neuron_totals(point, self.t, fired.spikes, fired.events, fired.count.numel())
        if self.rec.updates is not None:
            self._updates(point, fired, x.clone() if current is None else current(), heads)
        if fired.events:
            self.rec.samples_moved(self.t, fired.count[None], prev)
        self.step_activity[point] = (fired.spikes, fired.events)
        if prev is not None and fired.events == 0:
            self.settled[point] = (x, prev)  # same input next step => same count, no spikes
            return prev
        self.settled.pop(point, None)
        self.counts[point] = fired.count
        self.fired[point] = _Fired(fired, point)
        return fired.count

    def _updates(self, point: str, fired: kernels.Fired, current: torch.Tensor, heads: bool) -> None:
        """Records the layer's neurons whose input current changed this step or that fired (a fresh
        ``current``: it is kept as the next step's reference)."""
        moved = fired.count.ne(0) if fired.prev is None else fired.count.ne(fired.prev)
        moved = engine.merge_heads(moved) if heads else moved  # into the current's (rows, D) order
        last = self.last_input.get(point)
        changed = current.ne(0) if last is None else current.ne(last)
        self.last_input[point] = current
        self.rec.neuron_updates(point, self.t, changed.reshape(1, -1), moved.reshape(1, -1))

    def neuron(self, point: str, x: torch.Tensor) -> torch.Tensor:
        rest = self._at_rest(point, x)
        if rest is not None:
            return rest
        if engine.head_major(point, x):  # qk-norm: q / k counts arrive split into heads
            self.head_major.add(point)
        step, (lo, hi) = self.qp.quants[point].step, self.bounds[point]
        return self._fire(point, x, lambda prev: self.kern.fire_quant(x, step, lo, hi, self.max_spikes, prev,
                                                                    point in self.read_by_synapses))

    def _weights(self, path: str, in_point: str, counts: bool) -> torch.Tensor:
        """W_intᵀ in the cheapest exact arithmetic (:mod:`spikemfm.quant.exact`) for C·W_intᵀ (``counts``,
        |C| <= max|level|) or for ΔC·W_intᵀ accumulated into C·W_intᵀ (a step's delta can swing a count
        by up to hi − lo)."""
        key = (path, counts)
        w = self.w_acc.get(key)
        if w is None:
            q, w_int = self.qp.quants[in_point], self.qp.linears[path].w_int
            w = self.w_acc[key] = (exact.weight_operand(w_int, q.hi_abs, q.hi_abs) if counts else
                                   exact.weight_operand(w_int, self._level_span(in_point), self._max_step(in_point)))
        return w

    def _affine_params(self, path: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A synaptic layer's output scale and bias in the float path's dtype (converted once)."""
        p = self.affines.get(path)
        if p is None:
            ql = self.qp.linears[path]
            p = self.affines[path] = (ql.out_scale.to(self.dtype).contiguous(),
                                      None if ql.bias is None else ql.bias.to(self.dtype).contiguous())
        return p

    def _synapse(self, node: N.Linear, c: torch.Tensor) -> torch.Tensor:
        """The layer's accumulated integer current for input counts ``c`` (recording this step's work)."""
        if self.inputs.get(node.path) is c:  # the input neuron layer did not spike: same current
            return self.acc[node.path]
        fired = self.fired[self.pre[node.path]]  # c is new: its neuron layer fired this step
        f = fired.step
        self.rec.synapse_totals(node.path, self.t, f.spikes, f.events, f.col_spikes, f.col_events,
                                self.qp.linears[node.path].w_int)
        self.inputs[node.path] = c
        return self._accumulate(node.path, fired)

    def linear(self, node: N.Linear, c: torch.Tensor) -> torch.Tensor:
        last = self.outputs.get(node.path)
        if last is not None and last[0] is c:
            return last[1]
        acc = self._synapse(node, c)
        scale, bias = self._affine_params(node.path)
        self.outputs.pop(node.path, None)
        out = self.kern.affine(acc, scale, bias, self.dtype).view(*c.shape[:-1], -1)
        self.outputs[node.path] = (c, out)
        return out

    def linear_neuron(self, node: N.Linear, c: torch.Tensor, point: str, heads: int | None = None) -> torch.Tensor:
        """``neuron(point, linear(node, c))`` in one fused pass that never writes the float current; with
        ``heads``, the counts come split into attention heads (..., H, N, d), written in that layout."""
        rest = self._at_rest(point, c)  # same input counts => same current => the settled count
        if rest is not None:
            return rest
        acc = self._synapse(node, c)
        scale, bias = self._affine_params(node.path)
        step, (lo, hi), width = self.qp.quants[point].step, self.bounds[point], scale.shape[0]
        if heads is None:
            shape = torch.Size((*c.shape[:-1], width))
        else:
            shape = torch.Size((*c.shape[:-2], heads, c.shape[-2], width // heads))
            self.head_major.add(point)
        return self._fire(point, c, lambda prev: self.kern.fire_affine(
            acc, scale, bias, step, lo, hi, self.max_spikes, prev, shape,
            heads is None and point in self.read_by_synapses, heads),
            lambda: self.kern.affine(acc, scale, bias, self.dtype), heads is not None)

    def linear_heads(self, node: N.Linear, c: torch.Tensor, point: str, heads: int) -> torch.Tensor:
        """An attention operand (q, k or v) as counts (..., H, N, d), fused as in :meth:`linear_neuron`."""
        return self.linear_neuron(node, c, point, heads)

    def _accumulate(self, path: str, fired: _Fired) -> torch.Tensor:
        """The synaptic layer's accumulated integer current Σ ΔC·W_intᵀ = C·W_intᵀ after this step.

        Hardware adds a weight column per input spike (what the recorder charges); the simulator
        adds ΔC·W_intᵀ for the rows that received spikes, or, when about every row did, recomputes
        C·W_intᵀ in one GEMM (from the kernel's int8 counts where they fit) — the same integers.
        """
        f = fired.step
        rows = f.count.numel() // f.count.shape[-1]
        acc = self.acc.get(path)
        if acc is None or f.events >= rows:
            w = self._weights(path, fired.point, True)
            same = acc is not None and acc.dtype == exact.accumulator_dtype(w)  # recompute into it, in place
            acc = self.acc[path] = exact.matmul(f.count.reshape(rows, -1), w, out=acc if same else None)
        elif f.events:
            w = self._weights(path, fired.point, False)
            if acc.dtype != exact.accumulator_dtype(w):
                acc = self.acc[path] = acc.to(exact.accumulator_dtype(w))
            flat = f.delta.reshape(rows, -1)
            if int(f.row_active.sum()) * 2 > rows:
                acc += exact.matmul(flat, w)
            else:  # only the rows that received spikes add their weights
                acc[f.row_active] += exact.matmul(flat[f.row_active], w)
        return acc

    def _product(self, key: str, points: tuple[str, str], a: torch.Tensor, b: torch.Tensor, scale: float,
                 elementwise: bool = False) -> torch.Tensor:
        prev = self.cache.get(key)
        if prev is not None and prev[0][0] is a and prev[0][1] is b:
            return prev[1]  # neither spike train changed
        (sa, na), (sb, nb) = (self.step_activity.get(p, (0.0, 0.0)) for p in points)
        fans = (1, 1) if elementwise else (b.shape[-1], a.shape[-2])  # elements one spike of each train updates
        self.rec.product_step(key, self.t, (sa, na), (sb, nb), fan_a=fans[0], fan_b=fans[1])
        if prev is not None and na == 0 and nb == 0:
            out = prev[1]
        else:  # exact integer product, then scaled in the QANN's precision like the QANN
            self.cache.pop(key, None)  # let go of the old product before making the new one
            prev = None
            exact_ab = exact.elementwise(a, b) if elementwise else \
                exact.product(a, b, self.qp.product_bound(*points, a.shape[-1]))
            out = exact_ab.to(self.dtype).mul_(scale)  # in place: same values as the QANN's
        self.cache[key] = ((a, b), out)
        return out

    def activation(self, mlp: N.MLP, z: torch.Tensor) -> torch.Tensor:
        return self._lookup(mlp, self.neuron(mlp.point(N.Role.HIDDEN), z))

    def linear_activation(self, mlp: N.MLP, c: torch.Tensor) -> torch.Tensor:
        """``activation(mlp, linear(mlp.fc1, c))`` with fc1 fused into the hidden neuron layer."""
        return self._lookup(mlp, self.linear_neuron(mlp.fc1, c, mlp.point(N.Role.HIDDEN)))

    def _lookup(self, mlp: N.MLP, c: torch.Tensor) -> torch.Tensor:
        """The activation's LUT neuron layer on the hidden counts c."""
        point = mlp.point(N.Role.ACT)
        rest = self._at_rest(point, c)
        if rest is not None:
            return rest
        lo = self.qp.quants[mlp.point(N.Role.HIDDEN)].lo
        if mlp.path not in self.luts:
            self.luts[mlp.path] = self._lut(mlp)
        lut = self.luts[mlp.path]
        return self._fire(point, c, lambda prev: self.kern.fire_lut(c, lut, lo, self.max_spikes, prev),
                          lambda: lut[c.to(torch.int64) - lo])  # the table's level: the neuron's input

    def unit(self, node: Any, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """A float unit on accumulated input: its kind's float function, re-evaluated only when x changed."""
        kind = units.kind_of(node)
        return self._float_unit(node.path, kind.name, x, lambda: kind.forward(node, x, mask))

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
- softmax / LayerNorm evaluate their float function on the accumulated input; a unit whose input
  did not change since the last step is not re-evaluated (its output cannot change either).

Speed without changing a single value: counts, spike deltas and synaptic accumulators are integers;
bounded spikes and ≤ 8-bit weights accumulate through an int8 × int8 → int32 GEMM, otherwise the
integers are held in float32 wherever every value and partial sum provably stays below 2^24 (exact),
else in float64; the float path (currents, LayerNorm, softmax) stays float64 like the QANN it must equal.
A neuron layer counts its spikes once per step and every consumer (settling test, synapse and
product work, sparse row gathering) reuses those counts instead of scanning the tensors again.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from spikemfm.convert.qann import QParams
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.snn.record import Recorder

_EXACT32 = 2 ** 24  # float32 holds every integer of magnitude below this exactly
_HAS_INT_MM = hasattr(torch, "_int_mm")  # int8 GEMM with int32 accumulation (private but long-standing API)


class _Fired(NamedTuple):
    """What a neuron layer emitted this step: its spike delta, layer name and counts."""

    delta: torch.Tensor
    point: str
    spikes: float
    events: float


class SNNStepOps:
    """Engine ops for one time step at a time; call :meth:`next_step` before each engine run."""

    def __init__(self, qp: QParams, max_spikes: int | None, recorder: Recorder) -> None:
        self.qp = qp
        self.max_spikes = max_spikes
        self.rec = recorder
        self.t = -1
        self.counts: dict[str, torch.Tensor] = {}
        self.fired: dict[int, _Fired] = {}  # id(count tensor) -> its increment this step
        self.step_activity: dict[str, tuple[float, float]] = {}  # point -> (spikes, events) this step
        self.acc: dict[str, torch.Tensor] = {}
        self.cache: dict[str, tuple[tuple[torch.Tensor, ...], torch.Tensor]] = {}
        self.w_acc: dict[str, torch.Tensor] = {}  # path -> W_intᵀ in the accumulator's dtype
        self.luts32: dict[str, torch.Tensor] = {}
        self.settled: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # point -> (input, count) at rest
        self.outputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # synapse path -> (count, current)

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
        out = fn()
        self.cache[key] = ((x,), out)
        return out

    def _at_rest(self, point: str, x: torch.Tensor) -> torch.Tensor | None:
        """The count object of a neuron layer whose input is the very tensor it settled on (no spikes)."""
        rest = self.settled.get(point)
        return rest[1] if rest is not None and rest[0] is x else None

    def _fire(self, point: str, target: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Moves the layer's count toward ``target`` (a fresh float32 tensor this method may overwrite)."""
        prev = self.counts.get(point)
        delta = target if prev is None else target.sub_(prev)
        if self.max_spikes is not None:
            delta.clamp_(-self.max_spikes, self.max_spikes)
        spikes, events = self.rec.neuron_step(point, self.t, delta, self._max_step(point))
        self.step_activity[point] = (spikes, events)
        if prev is not None and events == 0:
            self.settled[point] = (x, prev)  # same input next step => same count, no spikes
            return prev
        self.settled.pop(point, None)
        count = delta.clone() if prev is None else prev + delta
        self.counts[point] = count
        self.fired[id(count)] = _Fired(delta, point, spikes, events)
        return count

    def _max_step(self, point: str) -> float:
        """Bound on |spikes| of one neuron in one step: B, or the whole level range when graded."""
        if self.max_spikes is not None:
            return float(self.max_spikes)
        return self._level_span(point)

    def _neuron(self, point: str, x: torch.Tensor, target: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A neuron layer on input x; ``target`` (its integer level) is only evaluated when not at rest."""
        rest = self._at_rest(point, x)
        return rest if rest is not None else self._fire(point, target(), x)

    def neuron(self, point: str, x: torch.Tensor) -> torch.Tensor:
        return self._neuron(point, x, lambda: self.qp.quants[point].level(x).to(torch.float32))

    def _weights(self, path: str, in_point: str) -> torch.Tensor:
        """W_intᵀ for the accumulation ΔC·W_intᵀ, in the cheapest exact arithmetic.

        int8 × int8 → int32 (``torch._int_mm``, VNNI on x86: ~5× a float32 GEMM here) when spike deltas
        and weights fit in int8 and the accumulator in int32; else float32 when the accumulator and every
        per-step partial sum stay below 2^24; else float64.
        """
        w = self.w_acc.get(path)
        if w is None:
            ql = self.qp.linears[path]
            # |acc| <= max|count|·max row L1; a step's delta can swing the count by up to (hi − lo)
            bound = self._level_span(in_point) * float(ql.w_int.abs().sum(1).max())
            if (_HAS_INT_MM and self._max_step(in_point) <= 127 and float(ql.w_int.abs().max()) <= 127
                    and bound < 2 ** 31):
                w = ql.w_int.T.to(torch.int8).contiguous()
            else:
                w = ql.w_int.T.to(torch.float32 if bound < _EXACT32 else torch.float64).contiguous()
            self.w_acc[path] = w
        return w

    def _level_span(self, point: str) -> float:
        q = self.qp.quants.get(point)
        return float(q.hi - q.lo) if q is not None else float("inf")

    @staticmethod
    def _matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch._int_mm(x, w) if w.dtype == torch.int8 else x @ w

    def linear(self, node: N.Linear, c: torch.Tensor) -> torch.Tensor:
        ql = self.qp.linears[node.path]
        last = self.outputs.get(node.path)
        if last is not None and last[0] is c:  # the input neuron layer did not spike: same current
            return last[1]
        fired = self.fired[id(c)]  # synaptic layers are always fed by a neuron layer
        w = self._weights(node.path, fired.point)
        flat = fired.delta.reshape(-1, fired.delta.shape[-1]).to(w.dtype)
        acc = self.acc.get(node.path)
        if acc is None:
            acc_dtype = torch.int32 if w.dtype == torch.int8 else w.dtype
            acc = self.acc[node.path] = torch.zeros(flat.shape[0], w.shape[1], dtype=acc_dtype)
        if fired.events * 2 > flat.numel():  # over half the inputs spiked: one dense product (exact zeros elsewhere)
            acc += self._matmul(flat, w)
        elif fired.events:
            active = flat.any(-1)
            if int(active.sum()) * 2 > flat.shape[0]:
                acc += self._matmul(flat, w)
            else:  # only the rows that received spikes add their weights
                acc[active] += self._matmul(flat[active], w)
        self.rec.synapse_step(node.path, self.t, fired.delta, fired.spikes, fired.events, ql.w_int,
                              self._max_step(fired.point))
        out = ql.affine(acc.reshape(*fired.delta.shape[:-1], -1))
        self.outputs[node.path] = (c, out)
        return out

    def _product(self, key: str, points: tuple[str, str], a: torch.Tensor, b: torch.Tensor,
                 scale: float) -> torch.Tensor:
        prev = self.cache.get(key)
        if prev is not None and prev[0][0] is a and prev[0][1] is b:
            return prev[1]  # neither spike train changed
        (sa, na), (sb, nb) = (self.step_activity.get(p, (0.0, 0.0)) for p in points)
        self.rec.product_step(key, self.t, (sa, na), (sb, nb), fan_a=b.shape[-1], fan_b=a.shape[-2])
        if prev is not None and na == 0 and nb == 0:
            out = prev[1]
        else:  # integer product, exact in float32 below 2^24, then scaled in float64 like the QANN
            exact32 = (float(self.qp.quants[points[0]].hi_abs) * self.qp.quants[points[1]].hi_abs
                       * a.shape[-1] < _EXACT32)
            prod = a @ b if exact32 else a.double() @ b.double()
            out = prod.to(torch.float64) * scale
        self.cache[key] = ((a, b), out)
        return out

    def scores(self, attn: N.Attention, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return self._product(f"{attn.path}.qk", (f"{attn.path}.q", f"{attn.path}.k"), q, k.transpose(-1, -2),
                             self.qp.score_scales[attn.path])

    def context(self, attn: N.Attention, p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self._product(f"{attn.path}.av", (f"{attn.path}.probs", f"{attn.path}.v"), p, v,
                             self.qp.ctx_scales[attn.path])

    def activation(self, mlp: N.MLP, z: torch.Tensor) -> torch.Tensor:
        c = self.neuron(f"{mlp.path}.hidden", z)
        lo = self.qp.quants[f"{mlp.path}.hidden"].lo
        if mlp.path not in self.luts32:
            self.luts32[mlp.path] = self.qp.luts[mlp.path].to(torch.float32)
        lut = self.luts32[mlp.path]
        return self._neuron(f"{mlp.path}.act", c, lambda: lut[(c - lo).long()])

    def norm(self, node: N.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        return self._float_unit(node.path, "layernorm", x, lambda: engine.layer_norm(node, x))

    def softmax(self, attn: N.Attention, s: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self._float_unit(f"{attn.path}.softmax", "softmax", s, lambda: engine.masked_softmax(s, mask))

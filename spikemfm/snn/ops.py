"""Step-by-step spiking semantics of the engine's ops, with per-layer state.

``simulate`` runs the engine once per time step; this object keeps every layer's state between
steps: the running spike count of each neuron layer, the accumulated synaptic current of each
synaptic layer, the running operands of each spike×spike product. Per step:

- a neuron layer moves its count toward level(accumulated input) by at most B spikes (signed IF,
  see :mod:`spikemfm.snn.neuron`) and records the spikes it fired;
- a synaptic layer is event-driven: only inputs that spiked this step add their weight columns
  (ΔC·W_intᵀ, exact integer accumulation in float64) to the accumulated current;
- Q·Kᵀ and A·V are products of two running spike counts; the work the incremental form
  ΔQ·K_{t−1}ᵀ + Q_t·ΔKᵀ needs is recorded, the product itself is exact in float64 integers;
- softmax / LayerNorm evaluate their float function on the accumulated input; a unit whose input
  did not change since the last step is not re-evaluated (its output cannot change either).
"""
from __future__ import annotations

from typing import Callable

import torch

from spikemfm.convert.qann import QParams
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.snn.record import Recorder


class SNNStepOps:
    """Engine ops for one time step at a time; call :meth:`next_step` before each engine run."""

    def __init__(self, qp: QParams, max_spikes: int | None, recorder: Recorder) -> None:
        self.qp = qp
        self.max_spikes = max_spikes
        self.rec = recorder
        self.t = -1
        self.counts: dict[str, torch.Tensor] = {}
        self.deltas: dict[int, torch.Tensor] = {}  # id(count tensor) -> its increment this step
        self.acc: dict[str, torch.Tensor] = {}
        self.cache: dict[str, tuple[tuple[torch.Tensor, ...], torch.Tensor]] = {}
        self.w32: dict[str, torch.Tensor] = {}
        self.nnz_col: dict[str, torch.Tensor] = {}
        self.settled: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # point -> (input, count) at rest
        self.outputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # synapse path -> (count, current)

    def next_step(self) -> None:
        self.t += 1
        self.deltas.clear()

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
        prev = self.counts.get(point)
        if prev is None:
            prev = torch.zeros_like(target)
        delta = target - prev
        if self.max_spikes is not None:
            delta.clamp_(-self.max_spikes, self.max_spikes)
        if point in self.counts and not bool(delta.any()):
            self.settled[point] = (x, prev)  # same input next step => same count, no spikes
            self.rec.neuron_step(point, self.t, delta)
            return prev
        self.settled.pop(point, None)
        count = prev + delta
        self.counts[point] = count
        self.deltas[id(count)] = delta
        self.rec.neuron_step(point, self.t, delta)
        return count

    def _neuron(self, point: str, x: torch.Tensor, target: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A neuron layer on input x; ``target`` (its integer level) is only evaluated when not at rest."""
        rest = self._at_rest(point, x)
        return rest if rest is not None else self._fire(point, target(), x)

    def neuron(self, point: str, x: torch.Tensor) -> torch.Tensor:
        return self._neuron(point, x, lambda: self.qp.quants[point].level(x))

    def _weights(self, path: str, max_delta: float) -> torch.Tensor:
        """W_int in float32 when every per-step partial sum is an integer below 2^24 (exact), else float64."""
        ql = self.qp.linears[path]
        if max_delta * float(ql.w_int.abs().max()) * ql.w_int.shape[1] < 2 ** 24:
            if path not in self.w32:
                self.w32[path] = ql.w_int.T.to(torch.float32).contiguous()
            return self.w32[path]
        return ql.w_int.T

    def linear(self, node: N.Linear, c: torch.Tensor) -> torch.Tensor:
        ql = self.qp.linears[node.path]
        last = self.outputs.get(node.path)
        if last is not None and last[0] is c:  # the input neuron layer did not spike: same current
            return last[1]
        delta = self.deltas[id(c)]  # synaptic layers are always fed by a neuron layer
        flat = delta.reshape(-1, delta.shape[-1])
        acc = self.acc.get(node.path)
        if acc is None:
            acc = torch.zeros(flat.shape[0], ql.w_int.shape[0], dtype=torch.float64)
            self.acc[node.path] = acc
        active = (flat != 0).any(-1)
        n_active = int(active.sum())
        if n_active:
            w = self._weights(node.path, float(flat.abs().max()))
            if n_active * 2 > flat.shape[0]:  # most rows spiked: a dense product adds exact zeros elsewhere
                acc += (flat.to(w.dtype) @ w).to(torch.float64)
            else:  # only the rows that received spikes add their weights
                acc[active] += (flat[active].to(w.dtype) @ w).to(torch.float64)
        if node.path not in self.nnz_col:
            self.nnz_col[node.path] = (ql.w_int != 0).sum(0).to(torch.float64)
        self.rec.synapse_step(node.path, self.t, delta, ql.w_int.shape[0], self.nnz_col[node.path])
        out = ql.affine(acc.reshape(*delta.shape[:-1], -1))
        self.outputs[node.path] = (c, out)
        return out

    def _product(self, key: str, a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
        prev = self.cache.get(key)
        if prev is not None and prev[0][0] is a and prev[0][1] is b:
            return prev[1]  # neither spike train changed
        da = a - prev[0][0] if prev else a
        db = b - prev[0][1] if prev else b
        self.rec.product_step(key, self.t, da, db, fan_a=b.shape[-1], fan_b=a.shape[-2])
        out = prev[1] if prev is not None and not da.any() and not db.any() else (a @ b) * scale
        self.cache[key] = ((a, b), out)
        return out

    def scores(self, attn: N.Attention, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return self._product(f"{attn.path}.qk", q, k.transpose(-1, -2), self.qp.score_scales[attn.path])

    def context(self, attn: N.Attention, p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self._product(f"{attn.path}.av", p, v, self.qp.ctx_scales[attn.path])

    def activation(self, mlp: N.MLP, z: torch.Tensor) -> torch.Tensor:
        c = self.neuron(f"{mlp.path}.hidden", z)
        lut, lo = self.qp.luts[mlp.path], self.qp.quants[f"{mlp.path}.hidden"].lo
        return self._neuron(f"{mlp.path}.act", c, lambda: lut[(c - lo).long()])

    def norm(self, node: N.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        return self._float_unit(node.path, "layernorm", x, lambda: engine.layer_norm(node, x))

    def softmax(self, attn: N.Attention, s: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self._float_unit(f"{attn.path}.softmax", "softmax", s, lambda: engine.masked_softmax(s, mask))

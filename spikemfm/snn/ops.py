"""Multi-step spiking semantics of the engine's ops, batched over time where the maths allows.

Every tensor carries a leading time axis T and holds *accumulated* quantities: the running spike
count of a neuron layer, the accumulated synaptic current of a linear layer. Per step the SNN works
on increments (spike events); accumulation makes the two views identical, so:

- neurons (:func:`bounded_follow`) are the only sequential-in-time computation (elementwise);
- synaptic layers are event-driven: only rows whose input spiked at step t are multiplied (exact
  integer accumulation in float64), then summed over time;
- spike×spike products (Q·Kᵀ, A·V) equal the running product of two running counts,
  Σ_t (ΔQ_t K_{t−1}ᵀ + Q_t ΔK_tᵀ); its additions are counted per event;
- softmax / LayerNorm evaluate their float function on the accumulated input at every step.
"""
from __future__ import annotations

import torch

from spikemfm.convert.qann import QParams
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.snn.changes import changed, on_changes
from spikemfm.snn.neuron import bounded_follow
from spikemfm.snn.record import Recorder


def _delta(x: torch.Tensor) -> torch.Tensor:
    """Per-step increments of an accumulated (T, ...) tensor."""
    return torch.diff(x, dim=0, prepend=torch.zeros_like(x[:1]))


class SNNOps:
    """Runs the engine as a T-step SNN with neurons emitting at most ``max_spikes`` spikes per step."""

    def __init__(self, qp: QParams, timesteps: int, max_spikes: int | None, recorder: Recorder) -> None:
        self.qp = qp
        self.T = timesteps
        self.max_spikes = max_spikes
        self.rec = recorder

    def inject(self, x: torch.Tensor) -> torch.Tensor:
        # The analog encoding layer's output enters as a current at step 1; accumulated, it is constant.
        return x.unsqueeze(0).expand(self.T, *x.shape)

    def _fire(self, point: str, target: torch.Tensor) -> torch.Tensor:
        c = bounded_follow(target, self.max_spikes)
        self.rec.neurons(point, _delta(c))
        return c

    def neuron(self, point: str, x: torch.Tensor) -> torch.Tensor:
        return self._fire(point, self.qp.quants[point].level(x))

    def linear(self, node: N.Linear, c: torch.Tensor) -> torch.Tensor:
        ql = self.qp.linears[node.path]
        d = _delta(c)
        flat = d.reshape(-1, d.shape[-1])
        active = (flat != 0).any(-1)
        out = torch.zeros(flat.shape[0], ql.w_int.shape[0], dtype=flat.dtype)
        out[active] = flat[active] @ ql.w_int.T  # only rows that received spikes this step
        acc = out.reshape(*d.shape[:-1], -1).cumsum(0)
        self.rec.synapses(node.path, d, fan_out=ql.w_int.shape[0])
        return ql.affine(acc)

    def _spike_product(self, path: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # a (T,...,M,K) @ b (T,...,K,P): the running product equals Σ_t (Δa_t b_{t−1} + a_t Δb_t),
        # exact in float64 integers; evaluated only for (step, head) slices where a or b spiked.
        self.rec.spike_products(path, _delta(a), _delta(b), fan_a=b.shape[-1], fan_b=a.shape[-2])
        return on_changes(torch.matmul, (a, b), unit_dims=2)

    def norm(self, node: N.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        return on_changes(lambda rows: engine.layer_norm(node, rows), (x,), unit_dims=1)

    def softmax(self, attn: N.Attention, s: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        ch = changed(s, unit_dims=1)
        if mask is None:
            return on_changes(lambda rows: torch.softmax(rows, -1), (s,), 1, ch)
        rows_mask = mask.expand(s.shape[1:]).reshape(-1, s.shape[-1])
        row_of = torch.arange(rows_mask.shape[0]).expand(s.shape[0], -1).flatten()[ch.flatten()]
        return on_changes(lambda rows: engine.masked_softmax(rows, rows_mask[row_of]), (s,), 1, ch)

    def scores(self, attn: N.Attention, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return self._spike_product(f"{attn.path}.qk", q, k.transpose(-1, -2)) * self.qp.score_scales[attn.path]

    def context(self, attn: N.Attention, p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self._spike_product(f"{attn.path}.av", p, v) * self.qp.ctx_scales[attn.path]

    def activation(self, mlp: N.MLP, z: torch.Tensor) -> torch.Tensor:
        c = self.neuron(f"{mlp.path}.hidden", z)
        lut = self.qp.luts[mlp.path]
        return self._fire(f"{mlp.path}.act", lut[(c - self.qp.quants[f"{mlp.path}.hidden"].lo).long()])

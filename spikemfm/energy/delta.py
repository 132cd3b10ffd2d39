"""The dense delta baseline of a stream: a dense accelerator that recomputes only what a frame changed.

The fair dense competitor of a streaming SNN (Eventful Transformers, Dutson et al., ICCV 2023, reuse unchanged
tokens): per frame, each layer skips the rows (tokens) whose quantized input is the same as in the previous frame —
exactly skippable, since the same integer input row gives the same output row. Per layer, the share it recomputes:

- encoding: the patches with a changed pixel; a synaptic layer (Linear): rows of its input neuron layer whose
  levels changed (its weights are still read once when any row changed);
- Q·Kᵀ: score (n, m) is recomputed when query row n or key row m changed: 1 − (1 − r_q)(1 − r_k);
- A·V (and a gate product): the delta form ΔA·V + A′·ΔV: min(1, r_A + r_V);
- softmax: every row when any key changed (a new score column), else the changed query rows;
- LayerNorm: the changed rows of the neuron layer it feeds — a lower bound (its input may change without changing
  a level), so this favours the dense side; the MLP lookup: the changed rows of its input.

The first frame is computed in full. Shares come from the QANN's own levels on the frames (what the accelerator
would compare), priced with the same per-layer dense costs as :func:`spikemfm.energy.dense_energy`.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from spikemfm.convert.qann import QANNOps
from spikemfm.energy.model import Acc, dense_work, profiles_for
from spikemfm.hardware.profiles import Profile
from spikemfm.energy.workload import LayerWork, layer_work
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.ir import units
from spikemfm.ir.netlist import NeuronLayer, SpikeProduct, build_netlist
from spikemfm.snn.simulate import SimResult

INPUT = "<input patches>"


class _LevelOps(QANNOps):
    """QANN ops that keep every neuron layer's integer levels of the last run."""

    def __init__(self, qp, dtype: torch.dtype) -> None:
        super().__init__(qp, dtype)
        self.levels: dict[str, torch.Tensor] = {}

    def neuron(self, point: str, x: torch.Tensor) -> torch.Tensor:
        c = super().neuron(point, x)
        self.levels[point] = c
        return c

    def activation(self, mlp: N.MLP, z: torch.Tensor) -> torch.Tensor:
        out = super().activation(mlp, z)  # the lookup's output levels: the act neuron layer's
        self.levels[mlp.point(N.Role.ACT)] = out
        return out


def _changed_patches(graph: N.EncoderGraph, now: torch.Tensor, before: torch.Tensor) -> float:
    """Share of the encoding's patches (tokens) with a changed input: pixels for images, ids for tokens."""
    if isinstance(graph.embed, N.PatchEmbed):
        p = graph.embed.weight.shape[-1]
        diff = (now != before).any(1, keepdim=True).to(torch.float32)  # (B, 1, H, W)
        return float(torch.nn.functional.max_pool2d(diff, p, p).mean())
    return float((now != before).to(torch.float32).mean())


def delta_shares(qann: Any, frames: torch.Tensor) -> list[dict[str, float]]:
    """Per frame (F, B, ...), per neuron layer: the share of its rows (tokens; query rows of attention
    probabilities) whose levels differ from the previous frame's, averaged over the batch; ``INPUT``: the share
    of changed input patches. Frame 0: every share 1."""
    dtype = qann.config.dtype
    ops = _LevelOps(qann.qparams, dtype)
    shares: list[dict[str, float]] = []
    last: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for f in range(frames.shape[0]):
            engine.run(qann.graph, engine.as_inputs(qann.graph, frames[f]), ops, dtype)
            if f == 0:
                shares.append({INPUT: 1.0, **{k: 1.0 for k in ops.levels}})
            else:
                row = {INPUT: _changed_patches(qann.graph, frames[f], frames[f - 1])}
                row.update({k: float((v != last[k]).any(-1).to(torch.float32).mean()) for k, v in ops.levels.items()})
                shares.append(row)
            last = dict(ops.levels)
    return shares


def _share(w: LayerWork, net, shares: dict[str, float]) -> float:
    """The share of layer ``w``'s dense work a delta accelerator recomputes this frame."""
    if w.kind == "encoding":
        return shares[INPUT]
    if w.kind == "synapse":
        return shares[w.in_point]
    try:
        rec = net[w.name]
    except KeyError:  # the encoding's own LayerNorm: it sees the changed patches
        return shares[INPUT]
    if isinstance(rec, SpikeProduct):
        a, b = (shares.get(i, 1.0) for i in rec.inputs)
        return units.product_kind(rec.kind).delta_share(a, b)
    if w.kind == "lut":
        return shares.get(rec.inputs[0], 1.0)
    if w.kind in units.KINDS and units.get(w.kind).delta == "scores":  # rows whose query changed; all, once a key did
        scores = net[rec.inputs[0]] if rec.inputs else None
        if isinstance(scores, SpikeProduct):
            q, k = (shares.get(i, 1.0) for i in scores.inputs)
            return 1.0 if k > 0 else q
        return 1.0
    if w.kind in units.KINDS:  # the changed rows of the neuron layers it feeds (a lower bound)
        fed = _next_neurons(net, w.name)
        return max(shares.get(n, 1.0) for n in fed) if fed else 1.0
    return 1.0


def _next_neurons(net, name: str) -> list[str]:
    """The neuron layers a record feeds, through records that are not neuron layers (pooling, residuals)."""
    out, todo, seen = [], [name], {name}
    while todo:
        for c in net.consumers(todo.pop()):
            if isinstance(c, NeuronLayer):
                out.append(c.name)
            elif c.name not in seen:
                seen.add(c.name)
                todo.append(c.name)
    return out


def dense_delta_energy(sim: SimResult, profile: Profile | str | Path, bits: int,
                       shares: dict[str, float]) -> tuple[float | None, list[str]]:
    """(pJ, missing terms) of one frame on the dense delta accelerator at ``bits``, given the frame's
    :func:`delta_shares` row; priced like :func:`spikemfm.energy.dense_energy` (the profile's dense reference)."""
    _, dp = profiles_for(profile)
    net = sim.netlist if sim.netlist is not None else build_netlist(sim.graph)
    acc = Acc()
    for w in layer_work(sim):
        r = _share(w, net, shares)
        scaled = replace(w, dense_macs=w.dense_macs * r, act_elements=w.act_elements * r,
                         dense_elements=w.dense_elements * r, weights=w.weights if r > 0 else 0.0)
        acc.merge(dense_work(dp, scaled, bits))
    return acc.value, sorted(acc.missing)

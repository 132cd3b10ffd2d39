"""Measured quantization sensitivity at every level of a tower: model → block → sub-layer → channel.

Measure (model, block, sub-layer levels): the relative output MSE

    D = Σ_x ‖f_q(x) − f(x)‖² / Σ_x ‖f(x)‖²

of the tower's output on real calibration inputs, where f_q quantizes only the knobs under test —
a Linear's weights (per-channel symmetric, b bits) or a spiking activation (the calibrated uniform
quantizer that becomes the IF neuron) — and everything else stays float. To first order these
distortions add up across knobs (the assumption behind ZeroQ's / HAWQ's Pareto allocation), which is
what :mod:`spikemfm.convert.mixed` optimises; the model- and block-level rows show how far the sum is
from the joint effect.

Channel level: per output channel c of a weight, the layer-output error E[(ΔW_c · x)²] = ΔW_c Σ_x ΔW_cᵀ
(Σ_x: second-moment matrix of the layer's input on the calibration data; the layer-wise reconstruction
error of OBQ / GPTQ), reported as each channel's share of the layer's error at the lowest candidate.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from spikemfm.convert.config import QuantConfig
from spikemfm.convert.energy_alloc import Consumer, consumers, spike_counts
from spikemfm.convert.quantizers import quantize_weight
from spikemfm.quant.params import ActQuant
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.ir.float_ops import FloatOps
from spikemfm.ir.netlist import Netlist, SynapticLayer, build_netlist


@dataclass(frozen=True)
class Knob:
    """One quantization decision: ``kind`` ``weight`` (a Linear path) or ``act`` (a quantization point).

    ``size``: parameters of the weight (group), or neurons per sample of the activation; ``block``: block
    index (None for the readout projection); ``channels``: the output channels of a weight's channel
    group (None: the whole layer), ``group`` its name (``outliers`` / ``rest``).
    """

    kind: str
    name: str
    block: int | None
    size: int
    channels: tuple[int, ...] | None = None
    group: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, f"{self.name}#{self.group}" if self.group else self.name)


def linears_of(graph: N.EncoderGraph, net: Netlist | None = None) -> dict[str, tuple[N.Linear, N.Point, int | None]]:
    """Every Linear of ``graph`` by path: (node, the quantization point feeding it, block index or None);
    ``net`` is the graph's netlist if already built."""
    net = net or build_netlist(graph)
    nodes = {lin.path: lin for lin in N.find_nodes(graph, N.Linear)}
    return {r.name: (nodes[r.name], net.pre(r.name).point, net.block(r.name)) for r in net.of(SynapticLayer)}


def knobs_of(graph: N.EncoderGraph, neurons: dict[str, int], net: Netlist | None = None) -> list[Knob]:
    """All weight and activation knobs of ``graph`` (per block: weights, then activations; then the readout).

    ``neurons``: neurons per sample of every quantization point.
    """
    net = net or build_netlist(graph)
    weights = [Knob("weight", path, i, lin.weight.numel()) for path, (lin, _, i) in linears_of(graph, net).items()]
    acts = [Knob("act", r.point, net.block(r.name), neurons[r.name]) for r in net.neurons()]
    blocks: list[int | None] = [*range(len(graph.blocks)), None]  # the readout's knobs come last
    return [k for b in blocks for group in (weights, acts) for k in group if k.block == b]


def split_outliers(knobs: list[Knob], shares: dict[str, torch.Tensor], fraction: float,
                   min_share: float) -> list[Knob]:
    """Splits each weight whose top ``fraction`` of channels carries ≥ ``min_share`` of its error in two groups."""
    out = []
    for k in knobs:
        share = shares.get(k.name) if k.kind == "weight" else None
        n_top = max(1, int(round(fraction * len(share)))) if share is not None else 0
        order = share.argsort(descending=True) if share is not None else None
        if share is None or n_top >= len(share) or float(share[order[:n_top]].sum()) < min_share:
            out.append(k)
            continue
        per_row = k.size // len(share)
        top, rest = sorted(order[:n_top].tolist()), sorted(order[n_top:].tolist())
        out += [Knob("weight", k.name, k.block, per_row * len(top), tuple(top), "outliers"),
                Knob("weight", k.name, k.block, per_row * len(rest), tuple(rest), "rest")]
    return out


class KnobOps(FloatOps):
    """Float ops with only the given knobs quantized (fake quantization: level · step, dequantized weights)."""

    def __init__(self, acts: dict[str, ActQuant], weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.acts, self.weights = acts, weights

    def neuron(self, point: str, x: torch.Tensor) -> torch.Tensor:
        q = self.acts.get(point)
        return x if q is None else q.level(x) * q.step

    def linear(self, node: N.Linear, c: torch.Tensor) -> torch.Tensor:
        w = self.weights.get(node.path, node.weight)
        return torch.nn.functional.linear(c, w.to(c.dtype), None if node.bias is None else node.bias.to(c.dtype))


@dataclass
class Sensitivity:
    """Measured distortion D (relative output MSE) per level and candidate bit width; per activation knob also
    its (unit spikes, messages) per input at each width and where its spikes go (for energy-aware allocation)."""

    candidates: tuple[int, ...]
    knobs: list[Knob]
    knob_d: dict[tuple[str, str], dict[int, float]]
    model_d: dict[int, float]
    block_d: dict[int, dict[int, float]]
    channel_share: dict[str, torch.Tensor] = field(default_factory=dict)
    spikes: dict[str, dict[int, tuple[float, float]]] = field(default_factory=dict)
    consumers: dict[str, tuple[Consumer, ...]] = field(default_factory=dict)
    measure: str = "relative output MSE of the tower on real calibration inputs"

    def rows(self) -> list[dict]:
        """One row per knob: its distortion at every candidate and its most sensitive channel's share."""
        out = []
        for k in self.knobs:
            row = {"kind": k.kind, "name": k.key[1], "block": "readout" if k.block is None else k.block,
                   "size": k.size, "channels": "all" if k.channels is None else len(k.channels)}
            row.update({f"D@{b}": self.knob_d[k.key][b] for b in self.candidates})
            if k.kind == "weight":
                share = self.channel_share[k.name]
                row["top_channel_share"] = float(share.max())
                row["top10pct_channels_share"] = float(share.sort(descending=True).values[:max(1, len(share) // 10)].sum())
            out.append(row)
        return out


class Calibration:
    """What calibration saw: a reservoir of every point's values, input second moments and point sizes."""

    def __init__(self, reservoir, batches: list[engine.Inputs]) -> None:
        self.reservoir = reservoir
        self.batches = batches
        self.moments: dict[str, torch.Tensor] = {}
        self.count: dict[str, int] = {}
        self.neurons: dict[str, int] = {}

    def observe_moments(self, point: str, x: torch.Tensor, batch: int) -> None:
        self.neurons.setdefault(point, x.numel() // batch)
        if point.role is N.Role.PROBS:  # not the input of a Linear; its last axis is the (padded) sequence
            return
        flat = x.detach().reshape(-1, x.shape[-1]).to(torch.float64)
        self.moments[point] = self.moments.get(point, 0) + flat.T @ flat
        self.count[point] = self.count.get(point, 0) + flat.shape[0]


def _output(graph: N.EncoderGraph, batches: list[engine.Inputs], ops: FloatOps) -> list[torch.Tensor]:
    return [engine.run(graph, b, ops, torch.float64) for b in batches]


def _distortion(graph: N.EncoderGraph, cal: Calibration, ref: list[torch.Tensor], ops: FloatOps) -> float:
    num = den = 0.0
    for b, r in zip(cal.batches, ref):
        y = engine.run(graph, b, ops, torch.float64)
        num += float(((y - r) ** 2).sum())
        den += float((r ** 2).sum())
    return num / max(den, 1e-300)


def _channel_shares(table: dict[str, tuple[N.Linear, N.Point, int | None]], cal: Calibration,
                    low: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    shares = {}
    for path, (node, point, _) in table.items():
        sigma = cal.moments[point] / cal.count[point]
        dw = low[path] - node.weight.to(torch.float64)
        err = ((dw @ sigma) * dw).sum(1)
        shares[path] = err / err.sum().clamp_min(1e-300)
    return shares


def _group_weight(node: N.Linear, full_q: torch.Tensor, channels: tuple[int, ...] | None) -> torch.Tensor:
    if channels is None:
        return full_q
    w = node.weight.to(torch.float64).clone()
    w[list(channels)] = full_q[list(channels)]
    return w


def measure_sensitivity(graph: N.EncoderGraph, cal: Calibration, candidates: tuple[int, ...], clip: str,
                        act_quant, outlier_fraction: float = 0.125, outlier_share: float = 0.5,
                        progress: bool = False) -> Sensitivity:
    """Measures D for every knob × candidate, every block × candidate and the whole model × candidate.

    ``act_quant(point, reservoir, QuantConfig)`` builds a calibrated activation quantizer (the QANN's).
    Weights whose outlier channels (top ``outlier_fraction``) carry ≥ ``outlier_share`` of the layer's
    error at the lowest candidate become two knobs (outlier group, rest), each with its own bits.
    """
    from tqdm.auto import tqdm

    net = build_netlist(graph)
    table = linears_of(graph, net)
    linears = {path: node for path, (node, _, _) in table.items()}
    weights: dict[int, dict[str, torch.Tensor]] = {}
    for bits in candidates:
        weights[bits] = {}
        for path, node in linears.items():
            w_int, scale = quantize_weight(node.weight, bits)
            weights[bits][path] = w_int * scale[:, None]
    shares = _channel_shares(table, cal, weights[min(candidates)])
    knobs = split_outliers(knobs_of(graph, cal.neurons, net), shares, outlier_fraction, outlier_share)
    ref = _output(graph, cal.batches, FloatOps())
    acts = {b: {k.name: act_quant(k.name, cal.reservoir, QuantConfig(bits=b, clip=clip)) for k in knobs
                if k.kind == "act"} for b in candidates}

    def run(sel: list[Knob], b: int) -> float:
        return _distortion(graph, cal, ref, KnobOps(
            {k.name: acts[b][k.name] for k in sel if k.kind == "act"},
            {k.name: _group_weight(linears[k.name], weights[b][k.name], k.channels) for k in sel
             if k.kind == "weight"}))

    knob_d = {k.key: {b: run([k], b) for b in candidates} for k in tqdm(knobs, desc="sensitivity", leave=False,
                                                                                   disable=not progress)}
    whole = [replace(k, channels=None, group="") for k in knobs]  # all groups of a layer at one width
    block_d = {i: {b: run([k for k in whole if k.block == i], b) for b in candidates}
               for i in range(len(graph.blocks))}
    model_d = {b: run(whole, b) for b in candidates}
    spikes = {k.name: _spikes_of(k, acts, cal, candidates) for k in knobs if k.kind == "act"}
    return Sensitivity(tuple(candidates), knobs, knob_d, model_d, block_d, shares, spikes, consumers(net))


def _spikes_of(k: Knob, acts: dict, cal: Calibration, candidates: tuple[int, ...]) -> dict[int, tuple[float, float]]:
    values = cal.reservoir.get(k.name)
    return {b: spike_counts(acts[b][k.name], values, k.size) for b in candidates}

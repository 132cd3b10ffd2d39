"""Per-layer operation counts of one inference, for the dense path and the spiking path.

Dense path (an ANN running the same graph once): MACs of every Linear, of Q·Kᵀ and A·V and of the
patch embedding; elementwise work of softmax, LayerNorm and GELU; each weight read once; each
activation read once and written once (the simple reuse model: weights stay on chip).
Spiking path (from a :class:`~spikemfm.snn.simulate.SimResult`): effective synaptic operations
(unit spikes × non-zero weights of their fan-out) and their graded-message form (firing inputs × non-zero
weights: one operation per message and target, whatever its payload), spike×spike additions, unit spikes and
messages (firing neurons per step) emitted, neuron
updates (every neuron every step, and — when the run counted them — the neurons whose input changed or that fired,
which an event-driven chip updates), float-unit evaluations (elements evaluated on changed input),
and the encoding layer's MACs once. All counts are per inference (averaged over the batch).
"""
from __future__ import annotations

import math

from dataclasses import dataclass

from spikemfm.ir import nodes as N
from spikemfm.ir import units
from spikemfm.snn.simulate import SimResult
from spikemfm.ir.netlist import (Constant, Encoding, FloatUnit, Lookup, NeuronLayer, SpikeProduct, SynapticLayer,
                                 build_netlist)
from spikemfm.snn.units import ANALOG_ENCODING, FLOAT_ON_ACCUMULATED, SPIKE_DRIVEN


@dataclass(frozen=True)
class LayerWork:
    """Work of one layer per inference. Fields not applying to a layer kind are 0."""

    name: str
    kind: str  # encoding | synapse | spike_product | neuron | lut | a float unit kind (spikemfm.ir.units)
    label: str
    dense_macs: float = 0.0
    dense_elements: float = 0.0
    weights: float = 0.0
    act_elements: float = 0.0
    w_bits: int = 0
    a_bits: int = 0
    sops: float = 0.0
    event_sops: float = 0.0
    spikes: float = 0.0
    messages: float = 0.0
    neuron_steps: float = 0.0
    active_neuron_steps: float = 0.0
    updated_neuron_steps: float | None = None  # neurons whose input changed or that fired (count_updates)
    float_evals: float = 0.0
    neurons: int = 0
    timesteps: int = 0
    in_point: str = ""
    in_spikes: float = 0.0
    in_neuron_steps: float = 0.0
    row: int = 0


def _tokens(sim, point: str, width: int) -> int:
    return sim.neuron_stats[point].neurons // width


def _synapse(sim, path: str, in_point: str) -> LayerWork:
    ql = sim.qparams.linears[path]
    out_f, in_f = ql.w_int.shape
    n = _tokens(sim, in_point, in_f)
    stats = sim.synapse_stats.get(path)
    sops, event_sops = _ops(sim, stats)
    src = sim.neuron_stats[in_point]
    return LayerWork(path, "synapse", SPIKE_DRIVEN, dense_macs=n * in_f * out_f, weights=in_f * out_f,
                     act_elements=n * (in_f + out_f), w_bits=ql.bits, a_bits=sim.qparams.quants[in_point].bits,
                     sops=sops, event_sops=event_sops, timesteps=sim.timesteps, in_point=in_point,
                     in_spikes=float(src.spikes.sum()) / sim.batch_size, in_neuron_steps=src.neurons * sim.timesteps)


def _ops(sim, stats) -> tuple[float, float]:
    """(unit-spike ops, graded-message ops) per inference, non-zero weights only."""
    if stats is None:
        return 0.0, 0.0
    return (float(stats.effective_ops.sum()) / sim.batch_size,
            float(stats.effective_event_ops.sum()) / sim.batch_size)


def steps_run(sim: SimResult) -> float:
    """Steps a run takes per input on average: T, or the mean of an adaptive run's ``steps_used`` (each input
    stops at its first quiet step; its later steps would repeat its output and cost every neuron an update)."""
    return float(sim.steps_used.double().mean()) if sim.steps_used is not None else float(sim.timesteps)


def _neuron(sim, point: str) -> LayerWork:
    st = sim.neuron_stats[point]
    b, t = sim.batch_size, steps_run(sim)
    return LayerWork(point, "neuron", SPIKE_DRIVEN, a_bits=sim.qparams.quants[point].bits,
                     spikes=float(st.spikes.sum()) / b, messages=float(st.events.sum()) / b,
                     neuron_steps=st.neurons * t, active_neuron_steps=float(st.events.sum()) / b,
                     updated_neuron_steps=None if st.updates is None else float(st.updates.sum()) / b,
                     neurons=st.neurons, timesteps=sim.timesteps)


def _scaled(n: int, traced: int, tokens: int) -> int:
    """A token-count dimension of a record traced on ``traced`` tokens, for a simulation on ``tokens``."""
    return tokens if n == traced else n


def _float_unit(sim, r: FloatUnit, traced: int, tokens: int, keys: int) -> LayerWork:
    # (..., rows, row): heads × tokens rows (or one pooled row); a row over tokens (softmax: keys) grows with them
    heads = math.prod(r.shape[:-2]) if len(r.shape) > 2 else 1
    rows = heads * (_scaled(r.shape[-2], traced, tokens) if len(r.shape) > 1 else 1)
    row = _scaled(r.row, traced, keys) if units.get(r.kind).row_over_tokens else r.row
    st = sim.float_stats.get(r.name)
    evals = float(st.elements.sum()) / sim.batch_size if st else 0.0
    return LayerWork(r.name, r.kind, FLOAT_ON_ACCUMULATED, dense_elements=rows * row, float_evals=evals,
                     timesteps=sim.timesteps, row=r.row)


def _product(sim, r: SpikeProduct, traced: int, tokens: int, keys: int) -> LayerWork:
    kind = units.product_kind(r.kind)
    macs, acts = kind.dense_work(r.shape, r.inner, r.heads,
                                 lambda n, key=False: _scaled(n, traced, keys if key else tokens))
    sops, event_sops = _ops(sim, sim.synapse_stats.get(r.name))
    return LayerWork(r.name, "spike_product", SPIKE_DRIVEN, dense_macs=macs, act_elements=acts,
                     a_bits=sim.qparams.quants[r.inputs[0] if kind.elementwise else N.Point(r.owner, N.Role.Q)].bits,
                     sops=sops, event_sops=event_sops, timesteps=sim.timesteps)


def _lookup(sim, r: Lookup, act_point: str) -> LayerWork:
    hidden = sim.neuron_stats[r.inputs[0]]  # evaluated when the input neuron's count changes
    return LayerWork(r.name, "lut", SPIKE_DRIVEN, dense_elements=hidden.neurons,
                     float_evals=float(hidden.events.sum()) / sim.batch_size,
                     a_bits=sim.qparams.quants[act_point].bits, timesteps=sim.timesteps)


def _encoding(sim) -> list[LayerWork]:
    e = sim.graph.embed
    n, d = e.pos.shape
    rows = []
    if isinstance(e, N.PatchEmbed):
        k = e.weight[0].numel()
        patches = e.patches
        rows.append(LayerWork(e.path, "encoding", ANALOG_ENCODING, dense_macs=patches * k * d,
                              weights=k * d, act_elements=patches * (k + d), w_bits=32, a_bits=32))
    if e.norm is not None:
        rows.append(LayerWork(e.norm.path, units.kind_of(e.norm).name, FLOAT_ON_ACCUMULATED, dense_elements=n * d,
                              float_evals=n * d, row=d))
    return rows


def layer_work(sim: SimResult) -> list[LayerWork]:
    """Per-layer work of the simulated tower, in execution order (the records of its netlist)."""
    if sim.graph is None or sim.qparams is None:
        raise ValueError("layer_work: the SimResult carries no graph; produce it with spikemfm.simulate")
    net = sim.netlist if sim.netlist is not None else build_netlist(sim.graph)
    first = net.neurons()[0]  # tokens of this simulation (the netlist's shapes are those of its trace)
    tokens = _tokens(sim, first.name, first.shape[-1]) if len(first.shape) > 1 else 1
    rows: list[LayerWork] = []
    for r in net:
        if isinstance(r, Encoding):
            rows += _encoding(sim)
        elif isinstance(r, Constant):  # computed once, in float, like the encoding
            rows.append(LayerWork(r.name, "encoding", ANALOG_ENCODING, dense_macs=r.size * r.fan_in,
                                  weights=r.size * r.fan_in, act_elements=r.size, w_bits=32, a_bits=32))
        elif isinstance(r, NeuronLayer):
            rows.append(_neuron(sim, r.name))
        elif isinstance(r, SynapticLayer):
            rows.append(_synapse(sim, r.name, r.pre))
        elif isinstance(r, SpikeProduct):
            rows.append(_product(sim, r, net.tokens, tokens, sim.context or tokens))
        elif isinstance(r, FloatUnit):
            rows.append(_float_unit(sim, r, net.tokens, tokens, sim.context or tokens))
        elif isinstance(r, Lookup):
            rows.append(_lookup(sim, r, net.consumers(r.name)[0].name))
    return rows  # residual adds and pooling sum currents: not priced separately

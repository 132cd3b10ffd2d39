"""Per-layer operation counts of one inference, for the dense path and the spiking path.

Dense path (an ANN running the same graph once): MACs of every Linear, of Q·Kᵀ and A·V and of the
patch embedding; elementwise work of softmax, LayerNorm and GELU; each weight read once; each
activation read once and written once (the simple reuse model: weights stay on chip).
Spiking path (from a :class:`~spikemfm.snn.simulate.SimResult`): effective synaptic operations
(unit spikes × non-zero weights of their fan-out), spike×spike additions, spikes emitted, neuron
updates (every neuron, every step), float-unit evaluations (elements evaluated on changed input),
and the encoding layer's MACs once. All counts are per inference (averaged over the batch).
"""
from __future__ import annotations

from dataclasses import dataclass

from spikemfm.ir import nodes as N
from spikemfm.snn.units import ANALOG_ENCODING, FLOAT_ON_ACCUMULATED, SPIKE_DRIVEN


@dataclass(frozen=True)
class LayerWork:
    """Work of one layer per inference. Fields not applying to a layer kind are 0."""

    name: str
    kind: str  # encoding | synapse | spike_product | neuron | layernorm | softmax | lut
    label: str
    dense_macs: float = 0.0
    dense_elements: float = 0.0
    weights: float = 0.0
    act_elements: float = 0.0
    w_bits: int = 0
    a_bits: int = 0
    sops: float = 0.0
    spikes: float = 0.0
    neuron_steps: float = 0.0
    active_neuron_steps: float = 0.0
    float_evals: float = 0.0
    neurons: int = 0
    timesteps: int = 0
    in_point: str = ""
    in_spikes: float = 0.0
    in_neuron_steps: float = 0.0


def _tokens(sim, point: str, width: int) -> int:
    return sim.neuron_stats[point].neurons // width


def _synapse(sim, lin: N.Linear, in_point: str) -> LayerWork:
    ql = sim.qparams.linears[lin.path]
    out_f, in_f = ql.w_int.shape
    n = _tokens(sim, in_point, in_f)
    stats = sim.synapse_stats.get(lin.path)
    sops = float(stats.effective_ops.sum()) / sim.batch_size if stats else 0.0
    src = sim.neuron_stats[in_point]
    return LayerWork(lin.path, "synapse", SPIKE_DRIVEN, dense_macs=n * in_f * out_f, weights=in_f * out_f,
                     act_elements=n * (in_f + out_f), w_bits=ql.bits, a_bits=sim.qparams.quants[in_point].bits,
                     sops=sops, timesteps=sim.timesteps, in_point=in_point,
                     in_spikes=float(src.spikes.sum()) / sim.batch_size, in_neuron_steps=src.neurons * sim.timesteps)


def _neuron(sim, point: str) -> LayerWork:
    st = sim.neuron_stats[point]
    b, t = sim.batch_size, sim.timesteps
    return LayerWork(point, "neuron", SPIKE_DRIVEN, a_bits=sim.qparams.quants[point].bits,
                     spikes=float(st.spikes.sum()) / b, neuron_steps=st.neurons * t,
                     active_neuron_steps=float(st.events.sum()) / b, neurons=st.neurons, timesteps=t)


def _float_unit(sim, key: str, kind: str, elements: float) -> LayerWork:
    st = sim.float_stats.get(key)
    evals = float(st.elements.sum()) / sim.batch_size if st else 0.0
    return LayerWork(key, kind, FLOAT_ON_ACCUMULATED, dense_elements=elements, float_evals=evals,
                     timesteps=sim.timesteps)


def _product(sim, a: N.Attention, key: str, tokens: int) -> LayerWork:
    d = a.q.weight.shape[0] // a.num_heads
    st = sim.synapse_stats.get(key)
    return LayerWork(key, "spike_product", SPIKE_DRIVEN, dense_macs=a.num_heads * tokens * tokens * d,
                     act_elements=3 * a.num_heads * tokens * max(tokens, d),
                     a_bits=sim.qparams.quants[f"{a.path}.q"].bits,
                     sops=float(st.effective_ops.sum()) / sim.batch_size if st else 0.0, timesteps=sim.timesteps)


def _block(sim, b: N.Block) -> list[LayerWork]:
    a, m = b.attn, b.mlp
    width = a.q.weight.shape[1]
    n = _tokens(sim, f"{a.path}.in", width)
    rows = [_float_unit(sim, b.ln1.path, "layernorm", n * width)]
    rows += [_neuron(sim, f"{a.path}.{p}") for p in ("in", "q", "k", "v")]
    rows += [_synapse(sim, lin, f"{a.path}.in") for lin in (a.q, a.k, a.v)]
    rows += [_product(sim, a, f"{a.path}.qk", n),
             _float_unit(sim, f"{a.path}.softmax", "softmax", a.num_heads * n * n),
             _neuron(sim, f"{a.path}.probs"), _product(sim, a, f"{a.path}.av", n),
             _neuron(sim, f"{a.path}.ctx"), _synapse(sim, a.o, f"{a.path}.ctx"),
             _float_unit(sim, b.ln2.path, "layernorm", n * width),
             _neuron(sim, f"{m.path}.in"), _synapse(sim, m.fc1, f"{m.path}.in"), _neuron(sim, f"{m.path}.hidden")]
    hidden = sim.neuron_stats[f"{m.path}.hidden"]
    lut_events = float(hidden.events.sum()) / sim.batch_size
    rows += [LayerWork(f"{m.path}.act", "lut", SPIKE_DRIVEN, dense_elements=hidden.neurons,
                       float_evals=lut_events, a_bits=sim.qparams.quants[f"{m.path}.act"].bits,
                       timesteps=sim.timesteps),
             _neuron(sim, f"{m.path}.act"), _synapse(sim, m.fc2, f"{m.path}.act")]
    return rows


def _encoding(sim) -> list[LayerWork]:
    e = sim.graph.embed
    n, d = e.pos.shape
    rows = []
    if isinstance(e, N.PatchEmbed):
        k = e.weight[0].numel()
        patches = n - (1 if e.cls is not None else 0)
        rows.append(LayerWork(e.path, "encoding", ANALOG_ENCODING, dense_macs=patches * k * d,
                              weights=k * d, act_elements=patches * (k + d), w_bits=32, a_bits=32))
    if e.norm is not None:
        rows.append(LayerWork(e.norm.path, "layernorm", FLOAT_ON_ACCUMULATED, dense_elements=n * d,
                              float_evals=n * d))
    return rows


def layer_work(sim) -> list[LayerWork]:
    """Per-layer work of the simulated tower, in execution order."""
    if sim.graph is None or sim.qparams is None:
        raise ValueError("layer_work: the SimResult carries no graph; produce it with spikemfm.simulate")
    rows = _encoding(sim)
    for b in sim.graph.blocks:
        rows += _block(sim, b)
    r = sim.graph.readout
    if r.norm is not None:
        width = r.norm.weight.shape[0]
        last = sim.graph.blocks[-1].attn
        tokens = 1 if r.norm_after_pool else _tokens(sim, f"{last.path}.in", width)
        rows.append(_float_unit(sim, r.norm.path, "layernorm", tokens * width))
    if r.proj is not None:
        rows += [_neuron(sim, f"{r.path}.in"), _synapse(sim, r.proj, f"{r.path}.in")]
    return rows

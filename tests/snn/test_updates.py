"""Neuron updates of an event-driven chip (``simulate(..., count_updates=True)``): per layer and step, the neurons
whose input current changed or that fired — checked against hand-worked spike trains and against an independent
reference computed from the running counts (the public stepping API)."""
import pytest
import torch

import spikemfm
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.ir import engine
from spikemfm.ir.netlist import NeuronLayer, SynapticLayer
from spikemfm.snn import simulate, simulate_stream, step_ops


def _vit():
    torch.manual_seed(0)
    clip = spikemfm.load("open_clip:ViT-B-32", embed_dim=16,
                         vision_cfg=dict(image_size=8, patch_size=4, width=32, layers=2, head_width=16),
                         text_cfg=dict(context_length=10, vocab_size=200, width=32, heads=2, layers=2))
    return clip.visual, torch.randn(3, 3, 8, 8)


VIT, X = _vit()


def _snn(bits: int, max_spikes: int | None):
    return convert(quantize(VIT, QuantConfig(bits=bits), [X]), ConvertConfig(max_spikes_per_step=max_spikes))


@pytest.mark.parametrize("max_spikes", [1, None])
def test_the_first_layer_with_a_constant_input_is_updated_once_then_only_while_it_fires(max_spikes):
    """The first neuron layer integrates the encoding's current, which arrives at step 1 and never changes: at
    step 1 every neuron with a non-zero input (or a spike) is updated; afterwards exactly the neurons that fire
    (binary: one spike per step until each count reaches its level; graded: none, it is there at step 1)."""
    snn = _snn(4, max_spikes)
    res = simulate(snn, X, 10, count_updates=True)
    first = snn.netlist.neurons()[0].name
    st = res.neuron_stats[first]
    ops, inputs = step_ops(snn, X.shape[0], 1), engine.as_inputs(snn.graph, X)
    seen = {}
    ops.neuron = (lambda f: lambda point, x: seen.setdefault(point, x.clone()) is not None and f(point, x))(ops.neuron)
    ops.next_step()
    engine.run(snn.graph, inputs, ops, snn.quant_config.dtype)
    x = seen[first]
    c = ops.layer_counts()[first]
    assert float(st.updates[0]) == float((x.ne(0) | c.ne(0)).sum())
    assert torch.equal(st.updates[1:], st.events[1:])  # no new input: updated = fired
    if max_spikes is None:
        assert float(st.updates[1:].sum()) == 0.0
    else:
        assert float(st.events[1:].sum()) > 0  # binary: the large levels take several steps


@pytest.mark.parametrize("max_spikes", [1, 3, None])
def test_synaptic_layers_update_the_neurons_their_input_spikes_reach_or_that_fire(max_spikes):
    """For a neuron layer fed by one synaptic layer (q, k, v, the MLP hidden layer): updated at step t = the
    neurons where ΔC_pre·W_intᵀ ≠ 0 (their integer current changed; at step 1 those whose current, bias included,
    is not 0) or whose own count moved — recomputed here from the running counts of every step."""
    snn = _snn(4, max_spikes)
    steps = 8
    res = simulate(snn, X, steps, count_updates=True)
    net = snn.netlist
    fed = {}
    for s in net.of(SynapticLayer):
        users = net.consumers(s.name)
        if len(users) == 1 and isinstance(users[0], NeuronLayer):
            fed[users[0].name] = s
    assert len(fed) >= 6  # q, k, v, hidden of two blocks
    ops, inputs = step_ops(snn, X.shape[0], steps), engine.as_inputs(snn.graph, X)
    before = {}
    for t in range(steps):
        ops.next_step()
        engine.run(snn.graph, inputs, ops, snn.quant_config.dtype)
        now = {k: v.to(torch.float64) for k, v in ops.layer_counts().items()}
        for point, syn in fed.items():
            ql = snn.qparams.linears[syn.name]
            d_pre = now[syn.pre] - before.get(syn.pre, torch.zeros_like(now[syn.pre]))
            moved = now[point] - before.get(point, torch.zeros_like(now[point]))
            changed = (d_pre @ ql.w_int.to(torch.float64).T).ne(0)
            if t == 0:  # the current starts from 0: the bias arrives at step 1 too
                changed = ql.affine(d_pre @ ql.w_int.to(torch.float64).T, snn.quant_config.dtype).ne(0)
            want = (changed | moved.ne(0)).sum()
            assert float(res.neuron_stats[point].updates[t]) == float(want), (point, t)
        before = now


def test_updates_lie_between_the_firing_neurons_and_all_neurons():
    res = simulate(_snn(8, 2), X, 12, count_updates=True)
    for st in res.neuron_stats.values():
        assert (st.updates >= st.events).all() and (st.updates <= st.neurons * res.batch_size).all()


def test_a_stream_frame_that_repeats_the_last_updates_nothing_once_settled():
    """Across frames the state is kept: a repeated frame changes no input, so after the stream settled on it no
    neuron is updated — what an event-driven chip gains on a still scene."""
    snn = _snn(4, None)
    frames = torch.stack([X, X + 0.1 * torch.randn_like(X), X + 0.1 * torch.randn_like(X)])
    frames[2] = frames[1]
    out = simulate_stream(snn, frames, "settle", 16, count_updates=True)
    last = out.frame(2)
    assert sum(float(s.updates.sum()) for s in last.neuron_stats.values()) == 0.0
    second = out.frame(1)
    assert sum(float(s.updates.sum()) for s in second.neuron_stats.values()) > 0

"""SpikeZIP-TF baseline: the SpikeZIP QANN we build and spikingjelly's recipe on it."""
import copy

import pytest
import torch

from spikemfm.baselines.spikezip import (SpikeZIPQuant, relu_graph, spikezip_convert, spikezip_outputs,
                                         spikezip_qann, spikezip_qat)
from spikemfm.convert.prune import GraphModel
from spikemfm.ir import extract


def test_quantizer_levels_rounding_and_step_gradient():
    q = SpikeZIPQuant(16, sym=True)
    q(torch.tensor([[0.0, 1.4]]))  # first batch sets s = 99.9th pct(|x|) / 7
    s = float(q.s.detach())
    assert s == pytest.approx(1.4 * 0.999 / 7, rel=1e-2)
    x = torch.tensor([[0.5 * s, -0.5 * s, 2.4 * s, -100 * s, 100 * s]], requires_grad=True)
    y = q(x)
    # ⌊x/s + ½⌋ clamped to [−8, 7]: the STBIF neuron's rounding (residual starts at ½)
    assert torch.allclose(y / s, torch.tensor([[1.0, 0.0, 2.0, -8.0, 7.0]]), atol=1e-5)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]]))  # straight-through inside the range
    assert q.s.grad is not None and float(q.s.grad) != 0.0
    with pytest.raises(ValueError, match="level"):
        SpikeZIPQuant(1, sym=False)


@pytest.fixture(scope="module")
def sz(tiny_clip, fmnist_test):
    graph = extract(tiny_clip.visual)
    qann = spikezip_qann(graph, 16, [fmnist_test.subset(64, 1).tensors()[0]])
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # steps off the calibration lattice, as after QAT (lattice ties are float-fragile)
        for m in qann.modules():
            if isinstance(m, SpikeZIPQuant):
                m.s.mul_(1 + 0.01 * torch.rand((), generator=gen))
    return graph, qann


def test_spikingjelly_spikezip_snn_accumulates_to_its_qann(sz, fmnist_test):
    _, qann = sz
    x = fmnist_test.subset(4, 0).tensors()[0]
    with torch.no_grad():
        ref = qann(x)
    out = spikezip_outputs(spikezip_convert(qann, 64), x, 64)
    err = (out - ref).abs().reshape(64, -1).amax(1)
    assert err[3] > 0.05 * ref.abs().max()  # one spike per step: far off early
    assert err[-1] <= 1e-4 * ref.abs().max()  # exact once every STBIF count has settled


def test_relu_graph_carries_the_fine_tuned_float_weights(sz, fmnist_test, tiny_clip):
    graph, qann = sz
    x, y = fmnist_test.subset(64, 2).tensors()
    tuned = copy.deepcopy(qann)
    clf = tiny_clip.zero_shot_classifier().float()
    losses = spikezip_qat(tuned, x, y, clf, 10.0, epochs=1, batch_size=32)
    assert len(losses) == 1 and losses[0] > 0
    float_net = copy.deepcopy(tuned)
    for name, m in list(float_net.named_modules()):
        for child, sub in list(m.named_children()):
            if isinstance(sub, SpikeZIPQuant):
                setattr(m, child, torch.nn.Identity())
    g = relu_graph(tuned, graph)
    assert all(b.mlp.act == "relu" for b in g.blocks)
    with torch.no_grad():
        ref, out = float_net(x[:8]), GraphModel(g)(x[:8])
    assert (out - ref).abs().max() <= 1e-4 * ref.abs().max()
    assert not torch.equal(g.blocks[0].mlp.fc1.weight, graph.blocks[0].mlp.fc1.weight)  # QAT moved them

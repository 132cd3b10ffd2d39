"""Baselines: the rebuilt plain-PyTorch tower, the naive unsigned conversion and spikingjelly's STA recipe."""
import torch

import spikemfm
from spikemfm.baselines import naive_unsigned, sta_convert, sta_outputs, to_torch_module
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.ir import extract
from spikemfm.ir import engine
from spikemfm.snn import simulate, step_ops


def test_rebuilt_tower_reproduces_the_tiny_clip_image_tower(tiny_clip, fmnist_test):
    x = fmnist_test.subset(32, 0).tensors()[0]
    with torch.no_grad():
        ref = tiny_clip.visual(x)
        assert (to_torch_module(extract(tiny_clip.visual))(x) - ref).abs().max() < 1e-4 * ref.abs().max()


def _snn():
    torch.manual_seed(0)
    vit = spikemfm.load("timm:vit_tiny_patch16_224", img_size=8, patch_size=4, depth=2, num_heads=2, embed_dim=16,
                        mlp_ratio=2.0, num_classes=6, global_pool="token")
    qann = quantize(vit, QuantConfig(bits=4), [torch.randn(16, 3, 8, 8)])
    return vit, qann, convert(qann, ConvertConfig(max_spikes_per_step=None))


def test_naive_unsigned_neurons_never_fire_negative_and_lose_the_qann():
    _, qann, snn = _snn()
    x = torch.randn(4, 3, 8, 8)
    naive = naive_unsigned(snn)
    assert naive.qparams is snn.qparams and naive.neuron_model.name == "unsigned_if"  # only the law changed
    res, ref = simulate(naive, x, 4), qann(x)
    ops, inputs = step_ops(naive, 4, 4), engine.as_inputs(naive.graph, x)
    for _ in range(4):
        ops.next_step()
        engine.run(naive.graph, inputs, ops, torch.float64)
        counts = ops.layer_counts()
        assert len(counts) == len(snn.qparams.quants) and all(int(c.min()) >= 0 for c in counts.values())
    assert simulate(snn, x, 4).t_exact(ref) == 1  # graded signed spikes: exact at once
    assert res.max_error(ref)[-1] > 0.05 * ref.abs().max()  # the negative halves are gone


def test_sta_equivalent_mode_accumulates_to_the_ann():
    vit, _, snn = _snn()
    x = torch.randn(4, 3, 8, 8)
    sta = sta_convert(snn.graph, [torch.randn(16, 3, 8, 8)], 4, "equivalent")
    out = sta_outputs(sta, x, 4)
    with torch.no_grad():
        ref = vit(x)
    assert out.shape[0] == 4 and (out[-1] - ref).abs().max() < 1e-4 * ref.abs().max()

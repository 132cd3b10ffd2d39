"""The Lava builder's part selection (netlist records) matches the PyTorch part reference (engine halves), for
pre-LN and post-LN blocks; every record of a block lands in exactly one half. No Lava needed."""
import pytest
import torch

import spikemfm
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.ir import engine
from spikemfm.ir.netlist import Lookup, NeuronLayer
from spikemfm.neuromorphic.parts import Part, part_records, reference_float


def _vit():
    torch.manual_seed(0)
    vit = spikemfm.load("timm:vit_tiny_patch16_224", img_size=8, patch_size=4, depth=2, num_heads=2, embed_dim=16,
                        mlp_ratio=2.0, num_classes=3)
    return vit, torch.randn(4, 3, 8, 8)


def _bert():
    from transformers import BertConfig, BertModel

    from spikemfm.models.text import TextEncoder

    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=20)).eval()
    ids = torch.randint(1, 100, (4, 6))
    return TextEncoder(bert, None), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@pytest.mark.parametrize("make", [_vit, _bert], ids=["pre_ln_vit", "post_ln_bert"])
def test_part_records_are_the_neurons_the_reference_steps(make):
    model, x = make()
    snn = convert(quantize(model, QuantConfig(bits=4), [x]), ConvertConfig(max_spikes_per_step=None))
    net, inputs = snn.netlist, engine.as_inputs(snn.graph, x)
    for kind in ("attention", "mlp", "block", "tower"):
        part = Part(kind, 1)
        records = part_records(net, snn.graph, part)
        neurons = {r.name for r in records if isinstance(r, NeuronLayer)}
        assert neurons == set(reference_float(snn, part, inputs, 2).spikes), kind
        if kind == "tower":
            assert records[-1].name == net.output
    halves = [part_records(net, snn.graph, Part(k, 0)) for k in ("attention", "mlp")]
    block = part_records(net, snn.graph, Part("block", 0))
    assert [r.name for r in halves[0] + halves[1]] == [r.name for r in block]
    assert any(isinstance(r, Lookup) for r in halves[1]) and not any(isinstance(r, Lookup) for r in halves[0])
    b = snn.graph.blocks[0]
    assert halves[0][-1].name == (b.residual_name("attention") if b.norm_first else b.ln1.path)


def test_the_part_reference_of_a_stream_is_the_stream_simulator():
    # what the Lava stream agreement compares against is exactly spikemfm.simulate_stream, step for step
    vit, _ = _vit()
    g = torch.Generator().manual_seed(3)
    qann = quantize(vit, QuantConfig(bits=4), [torch.randn(16, 3, 8, 8, generator=g)])
    snn = convert(qann, ConvertConfig(max_spikes_per_step=2))
    base = torch.randn(1, 2, 3, 8, 8, generator=g)
    frames = base + 0.1 * torch.randn(4, 2, 3, 8, 8, generator=g).cumsum(0)  # a slowly changing stream
    ref = reference_float(snn, Part("tower"), [engine.as_inputs(snn.graph, f) for f in frames], 12, 3)
    stream = spikemfm.simulate_stream(snn, frames, 3)
    assert torch.equal(ref.outputs, stream.run.outputs)
    spikes = sum(float(s.abs().sum()) for s in ref.spikes.values())
    assert spikes == stream.run.total_spikes() > 0
    with pytest.raises(spikemfm.ConfigError, match="timesteps = frames x steps_per_frame"):
        reference_float(snn, Part("tower"), [engine.as_inputs(snn.graph, f) for f in frames], 10, 3)

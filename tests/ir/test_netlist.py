"""The typed spiking netlist: traced from the one forward, faithful to the graph and to what the QANN runs."""
import pytest
import torch

import spikemfm
from spikemfm.convert import QuantConfig, quantize
from spikemfm.convert.qann import QANNOps
from spikemfm.ir import OpenClipTextTower, engine, extract
from spikemfm.ir import netlist as nl
from spikemfm.ir import nodes as N
from spikemfm.models.text import small_bert
from spikemfm.snn.units import describe_units


def _vit():
    torch.manual_seed(0)
    return spikemfm.load("timm:vit_tiny_patch16_224", img_size=16, patch_size=8, depth=2, embed_dim=32,
                         num_heads=2, mlp_ratio=3.0, num_classes=5)


def _clip_text():
    torch.manual_seed(0)
    clip = spikemfm.load("open_clip:ViT-B-32", embed_dim=16,
                         vision_cfg=dict(image_size=8, patch_size=4, width=32, layers=1, head_width=16),
                         text_cfg=dict(context_length=10, vocab_size=200, width=32, heads=2, layers=2))
    return OpenClipTextTower(clip)


TOWERS = {"timm_vit": _vit, "open_clip_text": _clip_text, "bert": lambda: small_bert(32, 2, 2)}


def test_vit_netlist_by_hand():
    net = nl.build_netlist(extract(_vit()))
    n, h, hidden = 5, 2, 96  # 4 patches + cls
    assert net.tokens == n and net.output == "head"
    per_role = {role: len(net.neurons(role)) for role in N.Role}
    gated_only = {N.Role.VALUE: 0, N.Role.GATED: 0}  # a plain MLP has no value / gated neuron layers
    assert per_role == {**{r: 2 for r in N.Role}, N.Role.READOUT_IN: 1, **gated_only}
    assert net["blocks.0.attn.probs"].shape == (h, n, n) and net["blocks.0.attn.probs"].size == h * n * n
    assert net["blocks.1.mlp.hidden"].shape == (n, hidden)
    assert net.pre("blocks.0.attn.qkv[k]").name == "blocks.0.attn.in"
    assert [r.name for r in net.post("blocks.0.attn.qkv[k]")] == ["blocks.0.attn.k"]
    assert net["blocks.0.attn.qk"].inputs == ("blocks.0.attn.q", "blocks.0.attn.k")
    assert net["blocks.0.attn.av"].inputs == ("blocks.0.attn.probs", "blocks.0.attn.v")
    assert net["blocks.0.attn.in"].inputs == ("blocks.0.norm1",)  # pre-LN: the norm feeds the neurons
    assert net["blocks.0.norm1"].inputs == ("patch_embed",)
    assert net["blocks.1.residual_attn"].inputs == ("blocks.0.residual_mlp", "blocks.1.attn.proj")
    assert net["blocks.0.mlp.lut"].inputs == ("blocks.0.mlp.hidden",)
    assert net["blocks.0.mlp.act"].inputs == ("blocks.0.mlp.lut",)
    assert net["norm.pool"].inputs == ("norm",) and net["norm.in"].inputs == ("norm.pool",)
    assert net.block("blocks.1.mlp.fc2") == 1 and net.block("head") is None and net.block("patch_embed") is None
    assert net["blocks.0.attn.probs"].role.unsigned and not net["blocks.0.attn.q"].role.unsigned


def test_post_ln_bert_edges():
    net = nl.build_netlist(extract(small_bert(32, 2, 2)))
    assert net["encoder.layer.0.attention.in"].inputs == ("embeddings",)  # post-LN: the stream itself
    ln = net["encoder.layer.0.attention.output.LayerNorm"]
    assert ln.inputs == ("encoder.layer.0.residual_attn",)
    assert net["encoder.layer.1.attention.in"].inputs == ("encoder.layer.0.output.LayerNorm",)
    assert net.output == "pooler.pool"


@pytest.mark.parametrize("tower", sorted(TOWERS))
def test_netlist_is_faithful_to_the_graph_and_the_qann(tower):
    graph = extract(TOWERS[tower]())
    net = nl.build_netlist(graph)
    # every Linear of the graph is one synaptic layer, driven by a neuron layer
    assert {r.name for r in net.of(nl.SynapticLayer)} == {lin.path for lin in N.find_nodes(graph, N.Linear)}
    assert all(isinstance(net[r.pre], nl.NeuronLayer) for r in net.of(nl.SynapticLayer))
    # every edge names an earlier record
    seen = set()
    for r in net:
        assert set(r.inputs) <= seen, r.name
        seen.add(r.name)
    # the QANN's neurons, in the order its forward runs them, are the netlist's neuron layers
    calib = [engine.as_inputs(graph, b) for b in _inputs(graph)]
    qann = quantize(graph, QuantConfig(bits=4), calib)
    assert set(qann.qparams.quants) == {r.name for r in net.neurons()}
    assert set(qann.qparams.linears) == {r.name for r in net.of(nl.SynapticLayer)}
    order = []

    class Spy(QANNOps):
        def neuron(self, point, x):
            order.append(point)
            return super().neuron(point, x)

        def activation(self, mlp, z):  # the lookup yields the activation neuron's level directly
            y = super().activation(mlp, z)
            order.append(N.Point(mlp.path, N.Role.ACT))
            return y

    engine.run(qann.graph, calib[0], Spy(qann.qparams), torch.float64)
    assert order == [r.name for r in net.neurons()]
    assert all(isinstance(p, N.Point) for p in order)


def _inputs(graph):
    if graph.input_kind == "image":
        return [torch.randn(4, 3, 16, 16)]
    ids = torch.randint(1, 150, (3, 10))
    ids[:, 7] = 199 if graph.embed.word.shape[0] == 200 else ids[:, 7]
    return [ids]


def test_units_label_every_record():
    graph = extract(_vit())
    units = describe_units(graph)
    net = nl.build_netlist(graph)
    assert [u.name for u in units] == [r.name for r in net]
    kinds = {u.name: (u.kind, u.label) for u in units}
    assert kinds["patch_embed"] == ("patch-embed", "analog-encoding")
    assert kinds["blocks.0.attn.softmax"] == ("softmax", "float-on-accumulated-input")
    assert kinds["blocks.0.attn.qk"] == ("spike-product", "spike-driven")
    assert kinds["blocks.0.mlp.lut"] == ("gelu-lut", "spike-driven")
    assert kinds["blocks.0.residual_mlp"] == ("residual", "current-sum")
    assert sum(u.kind == "if-neuron" for u in units) == len(net.neurons())


def test_tracer_requires_typed_points():
    ops = nl.TraceOps(extract(_vit()))
    x = ops.inject(torch.zeros(1, 5, 32))
    with pytest.raises(TypeError, match="plain string"):
        ops.neuron("blocks.0.attn.in", x)

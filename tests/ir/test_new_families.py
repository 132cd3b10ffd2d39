"""The towers of current multimodal models (issue 16), small random-init configs: each converts faithfully
(fidelity guard), its 8-bit QANN stays within a few % of the user's float module, the SNN equals the QANN
(graded spikes at once, binary 4-bit spikes within T), and both runtimes agree bit for bit."""
import importlib

import pytest
import torch

import spikemfm
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.ir import OpenClipTextTower, as_inputs, extractor_for
from spikemfm.ir import nodes as N

sim = importlib.import_module("spikemfm.snn.simulate")
SMALL = dict(img_size=16, patch_size=8, depth=2, embed_dim=32, num_heads=2, num_classes=5)
HF = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
          max_position_embeddings=40)


def _timm(name, **kw):
    torch.manual_seed(0)
    return spikemfm.load(f"timm:{name}", **{**SMALL, **kw}), torch.randn(6, 3, 16, 16)


def _swiglu(**kw):
    from timm.layers import SwiGLU

    return _timm("vit_small_patch16_224", mlp_layer=SwiGLU, act_layer=torch.nn.SiLU, **kw)


def _clip(**text):
    """An open_clip text tower (CLIP with small text / vision configs), one EOT id per sentence."""
    torch.manual_seed(0)
    clip = spikemfm.load("open_clip:ViT-B-32", embed_dim=16, vision_cfg=dict(image_size=8, patch_size=4, width=32,
                         layers=1, head_width=16), text_cfg=dict(context_length=10, vocab_size=200, width=32, heads=2,
                                                                 layers=2, **text))
    ids = torch.randint(3, 199, (4, 10), generator=torch.Generator().manual_seed(1))
    ids[torch.arange(4), torch.tensor([3, 5, 7, 9])] = 199
    return OpenClipTextTower(clip), ids


def _siglip_open_clip():
    """An open_clip tower wrapping a timm trunk (the SigLIP family: map pooling), small."""
    from spikemfm.app import coverage

    return coverage._open_clip_case("ViT-B-16-SigLIP", "image").build()


def _hf(kind):
    import transformers

    torch.manual_seed(0)
    kw = dict(HF)
    if kind == "DistilBert":
        kw = dict(vocab_size=120, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=40)
    elif kind in ("Electra", "Albert"):
        kw["embedding_size"] = 16
    model = getattr(transformers, f"{kind}Model")(getattr(transformers, f"{kind}Config")(**kw)).eval()
    ids = torch.randint(5, 119, (4, 12), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    x = {"input_ids": ids, "attention_mask": mask}
    if kind == "Bert":  # sentence pairs
        x["token_type_ids"] = (torch.arange(12) >= 6).long().expand(4, 12)
    return model, x


CASES = {
    "timm_gap_no_class_token": lambda: _timm("vit_small_patch16_224", class_token=False, global_pool="avg"),
    "timm_clip_pre_norm": lambda: _timm("vit_base_patch16_clip_224"),
    "timm_siglip_map_pooling": lambda: _timm("vit_base_patch16_siglip_224"),
    "timm_registers_dinov2": lambda: _timm("vit_small_patch14_reg4_dinov2"),
    "deit_distilled": lambda: _timm("deit_tiny_distilled_patch16_224"),
    "deit3_no_embed_class": lambda: _timm("deit3_small_patch16_224"),
    "timm_qk_norm": lambda: _timm("vit_small_patch16_224", qk_norm=True),
    "timm_swiglu": lambda: _swiglu(),
    "timm_swiglu_sub_ln": lambda: _swiglu(scale_mlp_norm=True),
    "timm_eva02_rope_swiglu": lambda: _timm("eva02_tiny_patch14_224", patch_size=8),
    "timm_eva02_sub_ln": lambda: _timm("eva02_base_patch14_224", patch_size=8),
    "timm_rope_vit_registers_gap": lambda: _timm("vit_base_patch16_rope_reg1_gap_256"),
    "open_clip_text_non_causal": lambda: _clip(no_causal_mask=True),
    "open_clip_text_last_pool": lambda: _clip(pool_type="last"),
    "open_clip_siglip_timm_trunk": _siglip_open_clip,
    "hf_bert_sentence_pairs": lambda: _hf("Bert"),
    "hf_roberta": lambda: _hf("Roberta"),
    "hf_xlm_roberta": lambda: _hf("XLMRoberta"),
    "hf_distilbert": lambda: _hf("DistilBert"),
    "hf_electra_embedding_projection": lambda: _hf("Electra"),
    "hf_albert_shared_layers": lambda: _hf("Albert"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_converts_faithfully_and_exactly(case, monkeypatch):
    model, x = CASES[case]()
    q8 = quantize(model, QuantConfig(bits=8), [x])
    assert q8.fidelity.first_divergence is None and q8.fidelity.output_error < 1e-6  # LayerScale folded in float32
    with torch.no_grad():
        ref = extractor_for(model).reference(model, as_inputs(q8.graph, x)).double()
    assert float((q8(x).double() - ref).norm() / ref.norm()) < 0.06  # 8-bit QANN vs the user's module
    graded = spikemfm.simulate(convert(q8, ConvertConfig(max_spikes_per_step=None)), x, 2)
    assert graded.t_exact(q8(x)) == 1  # graded spikes: exact from the first step
    q4 = quantize(model, QuantConfig(bits=4), [x])
    snn = convert(q4, ConvertConfig(max_spikes_per_step=1))
    step = spikemfm.simulate(snn, x, 48)
    assert step.t_exact(q4(x)) is not None  # binary signed spikes reach the 4-bit QANN exactly
    monkeypatch.setattr(sim, "_CHUNK_ELEMENTS", 1 << 30)
    assert torch.equal(step.outputs, spikemfm.simulate(snn, x, 48, runtime="time").outputs)


def test_each_new_unit_is_labelled_and_priced():
    """Attention pooling's latent query, qk-norm and the gate product appear as netlist records with labels
    and as priced energy rows."""
    from spikemfm.energy import estimate_energy
    from spikemfm.snn.units import describe_units

    for case, unit, kind in (("timm_siglip_map_pooling", "attn_pool.latent", "constant"),
                             ("timm_qk_norm", "blocks.0.attn.q_norm", "layernorm"),
                             ("timm_swiglu", "blocks.0.mlp.gate", "spike-product"),
                             ("timm_eva02_rope_swiglu", "blocks.0.attn.k_rope", "rope")):
        model, x = CASES[case]()
        snn = convert(quantize(model, QuantConfig(bits=4), [x]), ConvertConfig(max_spikes_per_step=2))
        labels = {u.name: u.kind for u in describe_units(snn.graph)}
        assert labels[unit] == kind, case
        rows = {r.layer: r for r in estimate_energy(spikemfm.simulate(snn, x[:2], 4), "horowitz45").rows}
        assert rows[unit].snn_pj is not None and rows[unit].snn_pj > 0, case


@pytest.mark.parametrize("case, match", [("timm_siglip_map_pooling", "attention pooling"),
                                         ("timm_qk_norm", "qk-norm"), ("timm_swiglu", "gated MLP"),
                                         ("timm_rope_vit_registers_gap", "rope unit")])
def test_lava_path_refuses_what_it_cannot_wire(case, match):
    """Present in the fixed-point reference; the Lava builder refuses these units with one clear error."""
    pytest.importorskip("lava")
    from spikemfm.errors import ConfigError
    from spikemfm.neuromorphic.export import export_lava
    from spikemfm.neuromorphic.parts import Part

    model, x = CASES[case]()
    snn = convert(quantize(model, QuantConfig(bits=4, precision="float64"), [x]), ConvertConfig(max_spikes_per_step=2))
    with pytest.raises(ConfigError, match=match):
        export_lava(snn, x[:1], Part("tower"), timesteps=2)


def test_distilled_readout_averages_both_heads():
    model, x = CASES["deit_distilled"]()
    graph = extractor_for(model).build(model, None)
    assert graph.readout.pool == "concat_prefix" and graph.readout.prefix_tokens == 2
    with torch.no_grad():
        tokens = model.forward_features(x)  # includes the final norm
        want = (model.head(tokens[:, 0]) + model.head_dist(tokens[:, 1])) / 2
    assert torch.allclose(model(x), want, atol=1e-6)
    assert graph.readout.proj.weight.shape == (5, 64)


def test_albert_unrolls_shared_layers_with_own_neurons():
    model, x = CASES["hf_albert_shared_layers"]()
    graph = extractor_for(model).build(model, None)
    paths = [b.path for b in graph.blocks]
    assert len(paths) == 2 and len(set(paths)) == 2 and paths[1].endswith("@1")
    assert torch.equal(graph.blocks[0].attn.q.weight, graph.blocks[1].attn.q.weight)  # one shared layer
    assert isinstance(graph.embed, N.TokenEmbed) and graph.embed.proj is not None  # 16 → 32


@pytest.mark.parametrize("case", ["timm_siglip_map_pooling", "timm_eva02_sub_ln", "hf_albert_shared_layers"])
def test_new_units_survive_a_save_and_reload(case, tmp_path):
    from spikemfm.snn.serialize import load_converted, save_converted

    model, x = CASES[case]()
    snn = convert(quantize(model, QuantConfig(bits=4), [x]), ConvertConfig(max_spikes_per_step=2))
    again, _ = load_converted(save_converted(snn, tmp_path / "m.snn.pt"))
    assert torch.equal(spikemfm.simulate(snn, x, 6).outputs, spikemfm.simulate(again, x, 6).outputs)


def test_rope_is_the_modules_rotation():
    """The graph's RoPE unit on a q current equals timm's apply_rot_embed_cat on the rotated tokens."""
    from timm.layers.pos_embed_sincos import apply_rot_embed_cat

    from spikemfm.ir import units

    model, _ = CASES["timm_eva02_rope_swiglu"]()
    graph = extractor_for(model).build(model, None)
    rope = graph.blocks[0].attn.q_rope
    x = torch.randn(2, 2, 1 + rope.sin.shape[0], rope.sin.shape[1], dtype=torch.float64)
    want = apply_rot_embed_cat(x[:, :, 1:], model.rope.get_embed().double(), half=rope.half)
    got = units.kind_of(rope).forward(rope, x)
    assert torch.equal(got[:, :, :1], x[:, :, :1]) and torch.allclose(got[:, :, 1:], want, atol=1e-12)

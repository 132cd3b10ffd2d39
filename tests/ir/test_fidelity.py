"""The fidelity guard: every extraction reproduces the user's module (float64), or conversion fails naming the
first diverging node. Cases: the silent mis-extractions found by a new user (issue 14)."""
import sys
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import spikemfm
from spikemfm.convert import QuantConfig, quantize
from spikemfm.errors import FidelityError, UnsupportedModuleError
from spikemfm.ir import FIDELITY_RTOL, OpenClipTextTower, as_inputs, check_fidelity, extract, extractor_for
from spikemfm.models.text import TextEncoder

SMALL_VIT = dict(img_size=16, patch_size=8, depth=2, embed_dim=32, num_heads=2, num_classes=5)
BERT_CFG = dict(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                max_position_embeddings=40)


def _timm(name, **kw):
    torch.manual_seed(0)
    return spikemfm.load(f"timm:{name}", **{**SMALL_VIT, **kw}), [torch.randn(8, 3, 16, 16)]


def _open_clip_text(**text_cfg):
    torch.manual_seed(0)
    clip = spikemfm.load("open_clip:ViT-B-32", embed_dim=16,
                         vision_cfg=dict(image_size=8, patch_size=4, width=32, layers=1, head_width=16),
                         text_cfg=dict(context_length=10, vocab_size=200, width=32, heads=2, layers=2, **text_cfg))
    ids = torch.randint(1, 199, (4, 10), generator=torch.Generator().manual_seed(1))
    ids[torch.arange(4), torch.tensor([3, 5, 7, 9])] = 199
    return OpenClipTextTower(clip), [ids]


def _hf(kind, pad_id=1):
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel, XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(3, 300, (4, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = mask[2, 4:] = 0
    if kind == "bert_pairs":
        types = torch.zeros_like(ids)
        types[:, 6:] = 1
        return BertModel(BertConfig(**BERT_CFG)).eval(), [{"input_ids": ids, "attention_mask": mask,
                                                            "token_type_ids": types}]
    cfg_cls, cls = {"roberta": (RobertaConfig, RobertaModel), "xlmr": (XLMRobertaConfig, XLMRobertaModel)}[kind]
    ids = ids.masked_fill(mask == 0, pad_id)
    return TextEncoder(cls(cfg_cls(**BERT_CFG, pad_token_id=pad_id)).eval(), None), \
        [{"input_ids": ids, "attention_mask": mask}]


CASES = {
    "timm_gap_no_class_token": lambda: _timm("vit_small_patch16_224", class_token=False, global_pool="avg"),
    "vit_medium_patch16_gap_256": lambda: _timm("vit_medium_patch16_gap_256"),
    "vit_base_patch16_gap_224": lambda: _timm("vit_base_patch16_gap_224"),
    "vit_base_patch16_siglip_gap_224": lambda: _timm("vit_base_patch16_siglip_gap_224"),
    "timm_pool_include_prefix": lambda: _timm("vit_small_patch16_224", global_pool="avg", pool_include_prefix=True),
    "timm_clip_pre_norm": lambda: _timm("vit_base_patch16_clip_224"),
    "timm_pos_embed_none": lambda: _timm("vit_small_patch16_224", pos_embed="none"),
    "open_clip_text_no_causal_mask": lambda: _open_clip_text(no_causal_mask=True),
    "bert_sentence_pairs": lambda: _hf("bert_pairs"),
    "roberta_text_encoder": lambda: _hf("roberta"),
    "xlmr_text_encoder": lambda: _hf("xlmr"),
}


def _module_output(model, batch):
    with torch.no_grad():
        return extractor_for(model).reference(model, as_inputs(extract(model), batch)).to(torch.float64)


@pytest.mark.parametrize("case", sorted(CASES))
def test_listed_cases_convert_faithfully(case):
    model, calib = CASES[case]()
    qann = quantize(model, QuantConfig(bits=8), calib)
    fid = qann.fidelity
    assert fid is not None and fid.first_divergence is None
    assert fid.output_error < 1e-9  # float64 on both sides: rounding only
    assert len(fid.stages) == len(qann.graph.blocks) + 2  # embedding, every block, output
    ref = _module_output(model, calib[0])  # the user's float32 module as it is
    assert float((qann.float_forward(calib[0]) - ref).norm() / ref.norm()) < 1e-5
    rel = float((qann(calib[0]) - ref).norm() / ref.norm())  # 8-bit QANN vs the user's float module
    assert rel < 0.06, rel


def _broken(graph, where):
    if where == "readout":  # the old GAP bug: always skip token 0
        return replace(graph, readout=replace(graph.readout, prefix_tokens=1))
    b = graph.blocks[1]
    w = b.mlp.fc2.weight.clone()
    w[0] += 1.0
    blocks = (graph.blocks[0], replace(b, mlp=replace(b.mlp, fc2=replace(b.mlp.fc2, weight=w))))
    return replace(graph, blocks=blocks)


@pytest.mark.parametrize("where, node", [("readout", "fc_norm"), ("block", "blocks.1")])
def test_guard_names_first_diverging_node(where, node):
    model, calib = CASES["timm_gap_no_class_token"]()
    with pytest.raises(FidelityError, match=rf"first divergence at '{node}' \(relative L2 [0-9.e-]+ > 1e-05"):
        check_fidelity(model, _broken(extract(model), where), calib[0])


def test_quantize_runs_the_guard_on_a_broken_extraction(monkeypatch):
    """A deliberately broken extractor (registered family) is caught by quantize before calibration."""
    model, calib = CASES["timm_gap_no_class_token"]()
    ex = extractor_for(model)
    broken = replace(ex, build=lambda m, n: _broken(ex.build(m, n), "readout"))
    monkeypatch.setattr(sys.modules["spikemfm.ir.extract"], "EXTRACTORS", (broken,))
    with pytest.raises(FidelityError, match="fc_norm"):
        quantize(model, QuantConfig(bits=8), calib)
    assert issubclass(FidelityError, UnsupportedModuleError)


def test_guard_tolerance_is_stated_and_faithful_graph_passes():
    model, calib = _open_clip_text()  # causal text tower
    fid = check_fidelity(model, extract(model), calib[0])
    assert fid.rtol == FIDELITY_RTOL == 1e-5 and fid.inputs == 4
    assert max(e for _, e in fid.stages) < 1e-12


def test_causal_mask_still_applied_where_open_clip_applies_it():
    model, calib = _open_clip_text()
    assert all(b.attn.causal for b in extract(model).blocks)
    model_nc, _ = _open_clip_text(no_causal_mask=True)
    assert not any(b.attn.causal for b in extract(model_nc).blocks)


def test_text_encoder_forward_is_normalised_pooled():
    model, calib = _hf("roberta")
    assert torch.allclose(model(**calib[0]), F.normalize(model.pooled(**calib[0]), dim=-1))


@pytest.mark.parametrize("case", ["timm_clip_pre_norm", "timm_gap_no_class_token", "roberta_text_encoder"])
def test_fixed_cases_snn_equals_qann(case):
    model, calib = CASES[case]()
    qann = quantize(model, QuantConfig(bits=4), calib)
    res = spikemfm.simulate(spikemfm.convert(qann, spikemfm.ConvertConfig(max_spikes_per_step=None)), calib[0], 2)
    ref = qann(calib[0])
    assert float((res.outputs[-1] - ref).abs().max()) <= 1e-4 * float(ref.abs().max())

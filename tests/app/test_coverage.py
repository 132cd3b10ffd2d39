"""The coverage sweep, generated from the registries: every timm ViT-family name, one open_clip architecture per
distinct tower layout (both towers), every listed Hugging Face encoder class. Each converts exactly and
faithfully or is refused with UnsupportedModuleError naming the module — never a crash (issue 16)."""
import pytest

from spikemfm.app import coverage as C
from spikemfm.errors import UnsupportedModuleError
from spikemfm.ir import FIDELITY_RTOL


def _open_clip_layouts():
    """One open_clip architecture per (vision trunk, timm pool, projection, text pooling / HF) layout."""
    from spikemfm.models._compat import import_open_clip

    oc, seen = import_open_clip(), {}
    for name in oc.list_models():
        cfg = oc.get_model_config(name)
        v, t = cfg["vision_cfg"], cfg["text_cfg"]
        key = ((v.get("timm_model_name") or "native").split("_")[0], v.get("timm_pool"), v.get("timm_proj"),
               bool(v.get("attentional_pool")), "hf" if t.get("hf_model_name") else t.get("pool_type", "argmax"),
               bool(t.get("embed_cls")))
        seen.setdefault(key, name)
    return sorted(seen.values())


CASES = C.timm_cases() + [C._open_clip_case(n, t) for n in _open_clip_layouts() for t in ("image", "text")] + \
    C.hf_cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.family}:{c.name}" for c in CASES])
def test_converts_exactly_or_is_refused_clearly(case):
    row = C.run_case(case)
    assert row.status != "crash", row.reason
    if row.status == "converts":
        assert row.fidelity_rel_l2 <= FIDELITY_RTOL  # the graph is the user's module
        assert row.qann8_rel_error < 0.1  # 8-bit QANN within a few % of the float module (random init)
        assert row.snn_equals_qann and row.t_exact_4bit is not None  # SNN ≡ QANN, also with binary spikes
    elif row.status == "refused":
        assert "(" in row.reason and ")" in row.reason  # names the module path and its type


def test_the_families_the_issue_names_convert():
    """DeiT distilled / DeiT3 / registers (DINOv2-reg) / CLIP-in-timm / GAP; RoBERTa family, DistilBERT,
    ELECTRA, ALBERT; open_clip non-causal text."""
    wanted = {"timm": {"deit_tiny_distilled_patch16_224", "deit3_small_patch16_224", "vit_small_patch14_reg4_dinov2",
                       "vit_base_patch16_clip_224", "vit_base_patch16_gap_224", "flexivit_small"},
              "hf": {"RobertaModel", "XLMRobertaModel", "DistilBertModel", "ElectraModel", "AlbertModel"}}
    by_name = {(c.family, c.name): c for c in CASES}
    for family, names in wanted.items():
        for name in names:
            row = C.run_case(by_name[(family, name)])
            assert row.status == "converts", (name, row.reason)


def test_an_unanticipated_configuration_is_refused_not_crashed():
    """The extractor's safety net: a missing attribute inside a known family becomes UnsupportedModuleError."""
    import torch

    import spikemfm
    from spikemfm.ir import extract

    torch.manual_seed(0)
    vit = spikemfm.load("timm:vit_tiny_patch16_224", **C.SMALL_TIMM)
    del vit.blocks[0].attn.proj  # a broken / unanticipated module
    with pytest.raises(UnsupportedModuleError, match="timm-vit extractor does not handle"):
        extract(vit)

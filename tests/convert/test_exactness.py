"""SNN ≡ QANN: the accumulated SNN output equals the QANN output from some T_exact on."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import spikemfm
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.ir import OpenClipTextTower
from spikemfm.snn import simulate



def _tiny_vit(depth=2, heads=2, head_dim=8, pool="token", mlp_ratio=2.0, seed=0):
    torch.manual_seed(seed)
    return spikemfm.load("timm:vit_tiny_patch16_224", img_size=8, patch_size=4, depth=depth, num_heads=heads,
                         embed_dim=heads * head_dim, mlp_ratio=mlp_ratio, num_classes=6, global_pool=pool)


def _tiny_clip(seed=0):
    torch.manual_seed(seed)
    return spikemfm.load("open_clip:ViT-B-32", embed_dim=16,
                         vision_cfg=dict(image_size=8, patch_size=4, width=32, layers=2, head_width=16),
                         text_cfg=dict(context_length=10, vocab_size=200, width=32, heads=2, layers=2))


def _ids(n=3, length=10, vocab=200, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab - 1, (n, length), generator=g)
    ids[torch.arange(n), torch.tensor([4, 7, 9])[:n]] = vocab - 1  # EOT token = highest id
    return ids


def _bert_inputs(n=3, length=9, vocab=1000, seed=2):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _check(qann, x, bits, max_spikes, timesteps):
    """The SNN's accumulated output equals the QANN's bit for bit (torch.equal) from T_exact on."""
    ref = qann(x)
    res = simulate(convert(qann, ConvertConfig(max_spikes_per_step=max_spikes)), x, timesteps)
    err = res.max_error(ref)
    equal = [torch.equal(res.outputs[t], ref) for t in range(timesteps)]
    assert equal[-1], f"not exact after {timesteps} steps: final error {err[-1]:.3g}"
    t_exact = next(t for t in range(timesteps, 0, -1) if not equal[t - 1]) + 1 if not all(equal) else 1
    assert res.t_exact(ref, 0.0) == t_exact  # the library's own T_exact at zero tolerance says the same
    return t_exact, err


FAMILIES = ["timm_vit", "open_clip_visual", "open_clip_text", "bert_padding"]


def _family(name):
    if name == "timm_vit":
        return _tiny_vit(), torch.randn(4, 3, 8, 8), [torch.randn(16, 3, 8, 8)]
    if name == "open_clip_visual":
        return _tiny_clip().visual, torch.randn(4, 3, 8, 8), [torch.randn(16, 3, 8, 8)]
    if name == "open_clip_text":
        return OpenClipTextTower(_tiny_clip()), _ids(), [_ids(3, seed=5)]
    from spikemfm.models.text import small_bert

    return small_bert(hidden=32, layers=2, heads=2), _bert_inputs(), [_bert_inputs(seed=7)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_snn_equals_qann_binary_spikes(family, bits):
    model, x, calib = _family(family)
    qann = quantize(model, QuantConfig(bits=bits), calib)
    t_exact, err = _check(qann, x, bits, max_spikes=1, timesteps=600 if bits == 8 else 80)
    if bits >= 4:  # genuinely temporal: one binary-spike step cannot carry a multi-level count
        assert float(err[0]) > 0 and t_exact > 1


@pytest.mark.parametrize("family", FAMILIES)
def test_snn_equals_qann_in_float32_precision(family):
    # float32 float path on both sides; integer accumulations stay exact, so the SNN still lands on the QANN
    model, x, calib = _family(family)
    qann = quantize(model, QuantConfig(bits=4, precision="float32"), calib)
    assert qann(x).dtype == torch.float32
    _check(qann, x, 4, max_spikes=1, timesteps=80)


@pytest.mark.parametrize("bits,max_spikes,timesteps,precision",
                         [(2, 1, 40, "float64"), (4, 2, 60, "float64"), (8, 16, 120, "float64"),
                          (8, 16, 120, "float32")])
def test_real_minilm_snn_equals_qann(minilm, bits, max_spikes, timesteps, precision):
    tok = minilm.tokenize(["A man is playing a guitar on the street.", "The weather is lovely today.",
                           "Stocks fell sharply."])
    calib = [minilm.tokenize(["Two dogs run across a green field.", "She reads the newspaper every morning."])]
    qann = quantize(minilm, QuantConfig(bits=bits, precision=precision), calib)
    _check(qann, tok, bits, max_spikes, timesteps)


@settings(max_examples=12, deadline=None)
@given(depth=st.integers(1, 3), heads=st.sampled_from([1, 2, 4]), head_dim=st.sampled_from([4, 8]),
       bits=st.integers(2, 8), max_spikes=st.sampled_from([1, 3, None]), pool=st.sampled_from(["token", "avg"]),
       mlp_ratio=st.sampled_from([1.0, 2.0]), seed=st.integers(0, 100))
def test_property_vit_snn_equals_qann(depth, heads, head_dim, bits, max_spikes, pool, mlp_ratio, seed):
    model = _tiny_vit(depth, heads, head_dim, pool, mlp_ratio, seed)
    g = torch.Generator().manual_seed(seed)
    qann = quantize(model, QuantConfig(bits=bits), [torch.randn(8, 3, 8, 8, generator=g)])
    steps = 1 if max_spikes is None else 60 * depth * (2 ** (bits - 1)) // max_spikes
    _check(qann, torch.randn(2, 3, 8, 8, generator=g), bits, max_spikes, max(steps, 8))


@settings(max_examples=6, deadline=None)
@given(layers=st.integers(1, 2), heads=st.sampled_from([1, 2]), bits=st.integers(2, 6), seed=st.integers(0, 50))
def test_property_bert_padding_snn_equals_qann(layers, heads, bits, seed):
    from spikemfm.models.text import small_bert

    model = small_bert(hidden=8 * heads, layers=layers, heads=heads, seed=seed)
    qann = quantize(model, QuantConfig(bits=bits), [_bert_inputs(seed=seed + 1)])
    _check(qann, _bert_inputs(seed=seed), bits, 1, 40 * layers * 2 ** (bits - 1))


def test_qann_approaches_float_as_bits_grow():
    model = _tiny_vit()
    x, calib = torch.randn(8, 3, 8, 8), [torch.randn(32, 3, 8, 8)]
    errs = []
    for bits in (2, 4, 8, 12):
        q = quantize(model, QuantConfig(bits=bits), calib)
        errs.append(float((q(x) - q.float_forward(x)).abs().max()))
    assert errs == sorted(errs, reverse=True) and errs[-1] < 0.01 * errs[0]
    assert torch.allclose(q.float_forward(x).float(), model(x), atol=1e-5)


def test_causal_mask_holds_in_spikes():
    # changing a token after the EOT token must not change the text embedding (causal attention)
    tower = OpenClipTextTower(_tiny_clip())
    ids = _ids(1)
    ids2 = ids.clone()
    ids2[0, 6] = 3  # after EOT at position 4
    qann = quantize(tower, QuantConfig(bits=4), [_ids(3, seed=5)])
    snn = convert(qann, ConvertConfig(max_spikes_per_step=1))
    a, b = simulate(snn, ids, 30).outputs, simulate(snn, ids2, 30).outputs
    assert torch.equal(a, b)


def test_padding_mask_holds_in_spikes():
    from spikemfm.models.text import small_bert

    model = small_bert(hidden=16, layers=1, heads=2)
    x = _bert_inputs()
    y = {k: v.clone() for k, v in x.items()}
    y["input_ids"][2, 5:] = 7  # change only padded tokens of sample 2
    qann = quantize(model, QuantConfig(bits=4), [x])
    snn = convert(qann, ConvertConfig())
    assert torch.equal(simulate(snn, x, 20).outputs[:, 2], simulate(snn, y, 20).outputs[:, 2])

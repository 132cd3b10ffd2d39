"""A saved converted model reloads and gives identical outputs; bad or altered files fail clearly."""
from dataclasses import replace

import pytest
import torch

import spikemfm
from spikemfm.convert import ConvertConfig, MixedPrecisionConfig, quantize
from spikemfm.snn import convert
from spikemfm.errors import ModelLoadError
from spikemfm.snn.serialize import load_converted, save_converted


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    vit = spikemfm.load("timm:vit_tiny_patch16_224", img_size=8, patch_size=4, depth=2, num_heads=2, embed_dim=16,
                        mlp_ratio=2.0, num_classes=6, global_pool="token")
    qann = quantize(vit, MixedPrecisionConfig(budget=5, max_calib_batches=1, sensitivity_batches=1),
                    [torch.randn(16, 3, 8, 8)])
    snn = convert(qann, ConvertConfig(max_spikes_per_step=2))
    path = save_converted(snn, tmp_path / "m.snn.pt", {"note": "test"})
    back, meta = load_converted(path)
    x = torch.randn(3, 3, 8, 8)
    assert meta == {"note": "test"}
    assert torch.equal(spikemfm.simulate(back, x, 12).outputs, spikemfm.simulate(snn, x, 12).outputs)
    assert back.quant_config == snn.quant_config and back.config == snn.config


def test_bad_files_fail_clearly(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_converted(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ModelLoadError, match="unreadable"):
        load_converted(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(2)}, other)
    with pytest.raises(ModelLoadError, match="not a spikemfm-snn"):
        load_converted(other)


def test_saved_model_is_compact_and_reloads_bit_identical(tmp_path):
    """8-bit integer weights stored as int8, float weights as float32: ~5 bytes per parameter, not ~16."""
    from spikemfm.models.text import small_bert

    bert = small_bert(hidden=64, layers=2, heads=2)
    ids = torch.randint(0, 1000, (4, 9))
    qann = quantize(bert, spikemfm.QuantConfig(bits=8), [ids])
    snn = convert(qann, ConvertConfig(max_spikes_per_step=None))
    path = save_converted(snn, tmp_path / "m.snn.pt")
    params = sum(ql.w_int.numel() for ql in qann.qparams.linears.values())
    embed = qann.graph.embed.word.numel() + qann.graph.embed.pos.numel()
    assert path.stat().st_size < 5.5 * params + 4.5 * embed + 200_000
    back, _ = load_converted(path)
    for k, ql in qann.qparams.linears.items():
        assert back.qparams.linears[k].w_int.dtype == torch.float64
        assert torch.equal(back.qparams.linears[k].w_int, ql.w_int)
    assert torch.equal(back.graph.blocks[0].mlp.fc1.weight, qann.graph.blocks[0].mlp.fc1.weight)
    assert torch.equal(spikemfm.simulate(back, ids, 2).outputs, spikemfm.simulate(snn, ids, 2).outputs)


def test_older_format_says_convert_again(tmp_path):
    old = tmp_path / "old.pt"
    torch.save({"format": "spikemfm-snn/1"}, old)
    with pytest.raises(ModelLoadError, match="older spikemfm: convert the model again"):
        load_converted(old)


def _small_saved(tmp_path):
    torch.manual_seed(0)
    vit = spikemfm.load("timm:vit_tiny_patch16_224", img_size=8, patch_size=4, depth=1, num_heads=2, embed_dim=16,
                        num_classes=3)
    snn = convert(quantize(vit, spikemfm.QuantConfig(bits=8), [torch.randn(8, 3, 8, 8)]))
    return save_converted(snn, tmp_path / "m.snn.pt")


def test_a_flipped_weight_is_refused_not_simulated(tmp_path):
    """Issue 15: an int weight −78 → 78 in the file changed outputs silently; now the digest refuses it."""
    path = _small_saved(tmp_path)
    payload = torch.load(path, weights_only=False)
    w = payload["qparams"].linears["head"].w_int
    w.view(-1)[0] = -w.view(-1)[0] if w.view(-1)[0] != 0 else 1
    torch.save(payload, path)
    with pytest.raises(ModelLoadError, match="integrity check failed"):
        load_converted(path)
    raw = bytearray(_small_saved(tmp_path).read_bytes())  # a byte flipped in the tensor data
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelLoadError):
        load_converted(path)


def _set_head(payload, w):
    qp = payload["qparams"]
    qp.linears["head"] = replace(qp.linears["head"], w_int=w)


def _fractional_weight(payload):
    w = payload["qparams"].linears["head"].w_int.to(torch.float32)
    w[0, 0] = 0.25
    _set_head(payload, w)


@pytest.mark.parametrize("edit, match", [
    (lambda p: p.update(graph="a string"), "field 'graph' is a str"),
    (_fractional_weight, "non-integer"),
    (lambda p: _set_head(p, torch.zeros(2, 2, dtype=torch.int8)), "has shape"),
    (lambda p: p["qparams"].quants.pop("blocks.0.attn.q"), r"quants\['blocks.0.attn.q'\]"),
])
def test_a_crafted_file_with_a_valid_digest_is_still_validated(tmp_path, edit, match):
    """A file re-signed after editing passes the digest; its structure and weights are still checked."""
    from spikemfm.snn.serialize import digest

    path = _small_saved(tmp_path)
    payload = torch.load(path, weights_only=False)
    edit(payload)
    payload["sha256"] = digest(payload)
    torch.save(payload, path)
    with pytest.raises(ModelLoadError, match=match):
        load_converted(path)


def test_a_saved_models_metadata_never_makes_spikemfm_fetch(tmp_path, monkeypatch):
    """Issue 15: metadata naming hf:<remote repo> made `simulate` contact the hub; now only local files are read."""
    import transformers

    from spikemfm.app.jobs import load_saved
    from spikemfm.models.text import small_bert

    ids = torch.randint(0, 1000, (2, 6))
    snn = convert(quantize(small_bert(hidden=32, layers=1, heads=2), spikemfm.QuantConfig(bits=4), [ids]))
    path = save_converted(snn, tmp_path / "m.snn.pt", {"job": {"model": "hf:someuser/some-remote-repo"}})
    asked = []

    def offline_only(name, **kwargs):
        asked.append(kwargs.get("local_files_only"))
        raise OSError(f"{name} is not in the local cache")
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline_only)
    with pytest.raises(ModelLoadError, match="some-remote-repo"):
        load_saved(path)
    assert asked == [True]

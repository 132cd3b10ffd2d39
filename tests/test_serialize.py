"""A saved converted model reloads and gives identical outputs; bad files fail clearly."""
import pytest
import torch

import spikemfm
from spikemfm.convert import ConvertConfig, MixedPrecisionConfig, convert, quantize
from spikemfm.errors import ModelLoadError
from spikemfm.serialize import load_converted, save_converted


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

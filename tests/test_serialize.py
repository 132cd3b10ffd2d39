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

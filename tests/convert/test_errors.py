import pytest
import torch
from torch import nn

import spikemfm
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.errors import ConfigError, UnsupportedModuleError
from spikemfm.ir import extract
from spikemfm.snn import simulate


@pytest.mark.parametrize("kwargs", [dict(bits=1), dict(bits=17), dict(weight_bits=0), dict(clip="minmax"),
                                    dict(percentile=10.0), dict(act_overrides=(("blocks.*", 20),)),
                                    dict(precision="float16")])
def test_bad_quant_config(kwargs):
    with pytest.raises(ValueError, match="QuantConfig"):
        QuantConfig(**kwargs)


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_bad_convert_config(bad):
    with pytest.raises(ConfigError, match="max_spikes_per_step"):
        ConvertConfig(max_spikes_per_step=bad)


def test_unsupported_module_names_path_and_type():
    m = spikemfm.load("timm:vit_tiny_patch16_224", img_size=8, patch_size=4, depth=1, embed_dim=16, num_heads=2)
    m.blocks[0].mlp.act = nn.Hardswish()
    with pytest.raises(UnsupportedModuleError,
                       match=r"blocks\.0\.mlp\.act \(torch\.nn\.modules\.activation\.Hardswish\)"):
        extract(m)


def test_unsupported_model_lists_supported():
    with pytest.raises(UnsupportedModuleError, match="Supported towers: timm VisionTransformer"):
        extract(nn.Sequential(nn.Linear(3, 3)))


def test_post_norm_timm_block_is_refused_clearly():
    from timm.models.vision_transformer import ResPostBlock

    m = spikemfm.load("timm:vit_small_patch16_224", img_size=16, patch_size=8, depth=1, block_fn=ResPostBlock)
    with pytest.raises(UnsupportedModuleError, match=r"blocks\.0 \(timm\.models\.vision_transformer\.ResPostBlock\)"):
        extract(m)


def test_two_tower_model_says_convert_each_tower():
    m = spikemfm.load("open_clip:ViT-B-32", embed_dim=16,
                      vision_cfg=dict(image_size=8, patch_size=4, width=32, layers=1, head_width=16),
                      text_cfg=dict(context_length=8, vocab_size=100, width=32, heads=2, layers=1))
    with pytest.raises(UnsupportedModuleError, match="OpenClipTextTower"):
        extract(m)


def test_convert_needs_a_qann_and_simulate_needs_positive_t():
    m = spikemfm.load("timm:vit_tiny_patch16_224", img_size=8, patch_size=4, depth=1, embed_dim=16, num_heads=2)
    with pytest.raises(ConfigError, match="spikemfm.quantize"):
        convert(m)
    q = quantize(m, QuantConfig(bits=4), [torch.randn(2, 3, 8, 8)])
    with pytest.raises(ConfigError, match="timesteps"):
        simulate(convert(q), torch.randn(1, 3, 8, 8), 0)
    with pytest.raises(ConfigError, match="no batch"):
        quantize(m, QuantConfig(bits=4), [])
    with pytest.raises(ValueError, match="image input"):
        q(torch.randn(3, 8, 8))


def test_parse_max_spikes():
    from spikemfm.convert import parse_max_spikes

    assert parse_max_spikes("graded") is None and parse_max_spikes("4") == 4
    for bad in ("0", "four", "-1"):
        with pytest.raises(ConfigError, match="max"):
            parse_max_spikes(bad)


def test_bad_mixed_precision_precision_and_lava_needs_float64(tiny_clip):
    from spikemfm.convert import MixedPrecisionConfig
    from spikemfm.neuromorphic.export import export_lava

    with pytest.raises(ValueError, match="MixedPrecisionConfig.precision"):
        MixedPrecisionConfig(precision="bf16")
    x = torch.randn(2, 1, 28, 28)
    snn = convert(quantize(tiny_clip.visual, QuantConfig(bits=4, precision="float32"), [x]))
    with pytest.raises(ConfigError, match="precision='float64'"):
        export_lava(snn, x)

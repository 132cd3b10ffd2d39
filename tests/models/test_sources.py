import subprocess
import sys

import pytest
import torch

import spikemfm
from spikemfm.errors import ModelLoadError


def test_timm_vit_small_config():
    m = spikemfm.load("timm:vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=5)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert len(m.blocks) == 2


def test_timm_deit_small_config():
    m = spikemfm.load("timm:deit_tiny_patch16_224", img_size=32, patch_size=16, depth=1, num_classes=3)
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_timm_missing_checkpoint_is_clear():
    with pytest.raises(ModelLoadError, match="nope.safetensors: checkpoint not found"):
        spikemfm.load("timm:vit_tiny_patch16_224", checkpoint="nope.safetensors")


def test_open_clip_both_towers_small_config():
    m = spikemfm.load("open_clip:ViT-B-32", embed_dim=32,
                      vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=2, head_width=32),
                      text_cfg=dict(context_length=16, vocab_size=500, width=64, heads=2, layers=2))
    img = m.encode_image(torch.randn(2, 3, 32, 32))
    txt = m.encode_text(torch.randint(0, 500, (3, 16)))
    assert img.shape == (2, 32) and txt.shape == (3, 32)


def test_hf_bert_from_local_folder(tmp_path):
    from transformers import AutoTokenizer

    from spikemfm.models.text import minilm_path, small_bert

    small_bert(hidden=32, layers=1, heads=2, vocab=30522).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(str(minilm_path())).save_pretrained(tmp_path)
    enc = spikemfm.load(f"hf:{tmp_path}")
    assert enc.encode(["a sentence", "another one"]).shape == (2, 32)


def test_real_minilm_embeds_sentences_meaningfully(minilm):
    e = minilm.encode(["A man is playing a guitar.", "Someone plays an instrument.",
                       "The stock market fell sharply today."])
    assert e.shape == (3, 384)
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.2  # a real pretrained model, not random weights


@pytest.mark.parametrize("name", ["foo", "timm:", "keras:resnet", "timm:not_a_model_xyz"])
def test_unknown_model_names(name):
    with pytest.raises(ModelLoadError):
        spikemfm.load(name)


def test_import_loads_neither_lava_nor_cuda():
    code = ("import sys, spikemfm, torch; "
            "assert not any(m == 'lava' or m.startswith('lava.') for m in sys.modules), 'lava imported'; "
            "assert not torch.cuda.is_initialized(); print('clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr


def test_cli_help():
    from pathlib import Path

    exe = Path(sys.executable).parent / "spikemfm"  # the console script installed beside this interpreter
    assert exe.is_file(), f"console script not installed at {exe}"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "demo" in out.stdout and "energy" in out.stdout


def test_timm_checkpoint_of_another_resolution_or_head_fails_clearly(tmp_path):
    """A 16-px checkpoint never becomes a 32-px model silently (timm would resample its position table)."""
    from safetensors.torch import save_file

    small = dict(patch_size=8, depth=1, embed_dim=16, num_heads=2)
    torch.manual_seed(0)
    src = spikemfm.load("timm:vit_tiny_patch16_224", img_size=16, num_classes=4, **small)
    path = tmp_path / "vit16.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    with pytest.raises(ModelLoadError, match=r"pos_embed has shape \(1, 5, 16\) .* set img_size"):
        spikemfm.load("timm:vit_tiny_patch16_224", checkpoint=path, img_size=32, num_classes=4, **small)
    with pytest.raises(ModelLoadError, match=r"head.weight .* set num_classes"):
        spikemfm.load("timm:vit_tiny_patch16_224", checkpoint=path, img_size=16, num_classes=7, **small)
    back = spikemfm.load("timm:vit_tiny_patch16_224", checkpoint=path, img_size=16, num_classes=4, **small)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(back(x), src.eval()(x))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"12345")
    with pytest.raises(ModelLoadError, match="bad.safetensors: unreadable checkpoint"):
        spikemfm.load("timm:vit_tiny_patch16_224", checkpoint=bad, img_size=16, **small)


def test_model_registries_name_every_form():
    from spikemfm.models import FAMILIES, NAMED

    assert set(FAMILIES) == {"timm", "open_clip", "hf", "hf-lm"} and {"tiny-clip-fmnist", "smollm2-135m"} <= set(NAMED)
    with pytest.raises(ModelLoadError, match="unknown model family 'keras'"):
        spikemfm.load("keras:resnet")
    with pytest.raises(ModelLoadError, match="model name must be a string"):
        spikemfm.load(5)

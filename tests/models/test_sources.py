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

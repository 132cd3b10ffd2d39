"""Image → text: class names found as whole words, visual tokens at the LM's embedding scale, a projector that
learns (validation loss falls), and a spiking description equal to the QANN's, token for token."""
from __future__ import annotations

import pytest
import torch

import spikemfm
from spikemfm.errors import ConfigError
from spikemfm.lm.caption import Projector, TrainConfig, describe, named_class, token_rms, train_projector
from spikemfm.lm.runners import QANNRunner, SNNRunner
from spikemfm.models.tiny_clip import PROMPT_CLASSNAMES


def test_named_class_whole_words():
    assert named_class(" t-shirt, not a shirt", PROMPT_CLASSNAMES) == 0
    assert named_class(" shirt", PROMPT_CLASSNAMES) == 6
    assert named_class(" an Ankle boot", PROMPT_CLASSNAMES) == 9
    assert named_class(" a cat", PROMPT_CLASSNAMES) is None


def test_visual_tokens_have_the_embedding_rms():
    p = Projector(8, 16, 3, rms=0.7)
    v = p(torch.randn(5, 8))
    assert v.shape == (5, 3, 16)
    assert torch.allclose(v.pow(2).mean(-1).sqrt(), torch.full((5, 3), 0.7), atol=1e-5)
    with pytest.raises(ConfigError):
        Projector(8, 16, 0, 1.0)
    with pytest.raises(ConfigError):
        TrainConfig(lr=0)


@pytest.fixture(scope="module")
def tiny():
    from spikemfm.models import load_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer("smollm2-135m")
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                                      eos_token_id=tok.eos_token_id, tie_word_embeddings=True)).eval()
    return lm, tok


def test_projector_learns_and_spiking_description_equals_qann(tiny):
    lm, tok = tiny
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(64, 8, generator=g)
    caps = [" bag" if f[0] > 0 else " coat" for f in feats]
    cfg = TrainConfig(k=2, steps=30, batch=16, lr=5e-2, every=10)
    proj, hist = train_projector(lm, tok, feats[:48], caps[:48], feats[48:], caps[48:], cfg)
    assert hist[-1]["val_loss"] < hist[0]["val_loss"] and abs(token_rms(lm) - proj.rms) < 1e-9
    calib = [torch.randint(0, len(tok), (2, 16), generator=g) for _ in range(2)]
    qann = spikemfm.quantize(lm, spikemfm.QuantConfig(bits=8), calib)
    snn = spikemfm.convert(qann, spikemfm.ConvertConfig(max_spikes_per_step=None))
    with torch.no_grad():
        vis = proj(feats[48:50])
    for i in range(2):
        q = describe(qann, QANNRunner(qann), vis[i:i + 1], tok, 3)
        s = describe(snn, SNNRunner(snn, "settle"), vis[i:i + 1], tok, 3)
        assert torch.equal(q.tokens, s.tokens) and s.exact and q.pass_tokens[0] == 2 + len(tok("A photo of a").input_ids)


def test_caption_cli_trains_on_a_folder_saves_and_reuses_the_projector(tiny, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from spikemfm.cli import main

    lm, tok = tiny
    folder = tmp_path / "lm"
    lm.save_pretrained(folder)
    tok.save_pretrained(folder)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(9):
        Image.fromarray((rng.random((20, 20)) * 255).astype("uint8")).save(imgs / f"{i}.png")
        lines.append(f"{i}.png\t{'a bag' if i % 2 else 'a coat'}")
    (imgs / "captions.tsv").write_text("\n".join(lines) + "\n")
    proj = tmp_path / "p.pt"
    common = ["--model", f"hf-lm:{folder}", "--k", "2", "--max-new-tokens", "2", "--no-progress"]
    assert main(["caption", str(imgs / "0.png"), "--train-folder", str(imgs), "--steps", "2", "--save-projector",
                 str(proj), "--path", "qann", "--resolution", "16", *common]) == 0
    first = capsys.readouterr().out
    assert proj.is_file() and first.startswith(str(imgs / "0.png"))
    assert main(["caption", str(imgs / "0.png"), "--projector", str(proj), "--path", "snn", "--resolution", "16",
                 *common]) == 0
    assert capsys.readouterr().out == first  # the SNN describes it as the QANN did
    assert main(["caption", str(imgs / "0.png"), "--projector", str(proj), *common]) == 2  # trained at 16, not 28
    assert "--resolution 16" in capsys.readouterr().err
    assert main(["caption", str(imgs / "0.png"), "--resolution", "18", *common]) == 2
    assert "multiple of the tower's 4-pixel patch" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_text("no")
    assert main(["caption", str(imgs / "0.png"), "--projector", str(tmp_path / "bad.pt"), *common]) == 2
    assert "--projector" in capsys.readouterr().err
    (imgs / "captions.tsv").write_text("missing.png\ta hat\n")
    assert main(["caption", str(imgs / "0.png"), "--train-folder", str(imgs), *common]) == 2


def test_tower_at_another_resolution():
    from spikemfm.app.tiny_clip import calibration_images
    from spikemfm.errors import ModelLoadError
    from spikemfm.models.tiny_clip import downsample, load_tiny_clip, tower_at

    visual = load_tiny_clip().visual
    x = calibration_images(8, batch_size=8)[0]
    with torch.no_grad():
        assert torch.equal(tower_at(visual, 28)(x), visual(x))  # its own resolution: the same tower
    small = tower_at(visual, 12)
    assert small.patch_embed.num_patches == 9 and small.pos_embed.shape[1] == 10
    xs = downsample(x, 12)
    assert xs.shape[-2:] == (12, 12) and torch.equal(downsample(x, 28), x)
    half = downsample(x, 14)  # an integer factor: each pixel the mean of a 2 × 2 block
    assert torch.allclose(half[..., 0, 0], x[..., :2, :2].mean((-1, -2)), atol=1e-6)
    qann = spikemfm.quantize(small, spikemfm.QuantConfig(bits=8), [xs])
    snn = spikemfm.convert(qann, spikemfm.ConvertConfig(max_spikes_per_step=None))
    assert torch.equal(spikemfm.simulate(snn, xs[:2], 64, adaptive=True).outputs[-1], qann(xs[:2]))
    with pytest.raises(ModelLoadError, match="multiple of the patch size"):
        tower_at(visual, 14)

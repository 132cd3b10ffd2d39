"""Input specs from the model's own configuration, and real data from the user's folder or text file."""
import pytest
import torch
from PIL import Image

import spikemfm
from spikemfm.app import DataSource, input_spec, real_batches
from spikemfm.errors import ConfigError, DataError
from spikemfm.ir import extract


def _vit(**kw):
    torch.manual_seed(0)
    return spikemfm.load("timm:vit_tiny_patch16_224", **{**dict(img_size=32, patch_size=8, depth=1, embed_dim=16,
                                                              num_heads=2), **kw})


def test_specs_come_from_the_models_own_config(tiny_clip):
    vit = _vit()
    spec = input_spec(vit, extract(vit))
    assert (spec.size, spec.channels, spec.mean, spec.std) == (32, 3, (0.5,) * 3, (0.5,) * 3)  # timm default cfg
    assert "timm pretrained_cfg" in spec.source
    clip = spikemfm.load("open_clip:ViT-B-32", embed_dim=16,
                         vision_cfg=dict(image_size=8, patch_size=4, width=32, layers=1, head_width=16),
                         text_cfg=dict(context_length=8, vocab_size=100, width=32, heads=2, layers=1))
    spec = input_spec(clip.visual, extract(clip.visual))
    assert spec.size == 8 and spec.mean[0] == pytest.approx(0.48145466) and "open_clip" in spec.source
    spec = input_spec(tiny_clip.visual, extract(tiny_clip.visual))
    assert (spec.size, spec.channels, spec.mean, spec.std) == (28, 1, (0.2860,), (0.3530,))


def test_default_images_are_fitted_and_the_note_says_how():
    vit = _vit()
    graph = extract(vit)
    batches, note = real_batches(graph, input_spec(vit, graph), None, "train", 6, 4)
    assert [b.shape for b in batches] == [(4, 3, 32, 32), (2, 3, 32, 32)]
    assert "Fashion-MNIST train" in note and "grey repeated to 3 channels" in note
    assert "resized 28x28 -> 32x32" in note and "mean (0.5, 0.5, 0.5)" in note


def test_user_image_folder_calibration_and_evaluation_are_disjoint(tmp_path):
    for i in range(5):  # odd sizes and colours: each image is fitted to the tower
        Image.new("RGB", (20 + i, 24), (40 * i, 10, 200)).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    vit = _vit()
    graph = extract(vit)
    spec = input_spec(vit, graph)
    train, note = real_batches(graph, spec, None, "train", 10, 10, DataSource(str(tmp_path)))
    test, _ = real_batches(graph, spec, None, "test", 10, 10, DataSource(str(tmp_path)))
    assert train[0].shape == (3, 3, 32, 32) and test[0].shape == (2, 3, 32, 32)  # files 0,2,4 / 1,3
    assert "even-numbered" in note
    red = (40 * 2 / 255 - 0.5) / 0.5  # img2's red channel, normalised
    assert torch.allclose(train[0][1, 0], torch.full((32, 32), red), atol=1e-5)
    with pytest.raises(DataError, match="no test images"):
        (tmp_path / "one").mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / "one" / "a.png")
        real_batches(graph, spec, None, "test", 4, 4, DataSource(str(tmp_path / "one")))


def test_user_sentences_and_default_sentences_never_overlap(tmp_path, minilm):
    from spikemfm.ir import extract as ex

    graph = ex(minilm)
    text = tmp_path / "s.txt"
    text.write_text("first one\n\nsecond one\nthird one\nfourth one\n")
    train, note = real_batches(graph, None, minilm.tokenize, "train", 10, 10, DataSource(str(text)))
    test, _ = real_batches(graph, None, minilm.tokenize, "test", 10, 10, DataSource(str(text)))
    assert train[0]["input_ids"].shape[0] == 2 and test[0]["input_ids"].shape[0] == 2 and "even" in note
    cal = real_batches(graph, None, lambda s: s, "train", 1000, 1000)[0][0]
    ev = real_batches(graph, None, lambda s: s, "test", 1000, 1000)[0][0]
    assert cal and ev and not set(cal) & set(ev)


def test_bad_data_fails_clearly(tmp_path):
    with pytest.raises(ConfigError, match="no such folder or file"):
        DataSource(str(tmp_path / "missing"))
    vit = _vit()
    graph = extract(vit)
    (tmp_path / "t.txt").write_text("x\n")
    with pytest.raises(DataError, match="needs a folder of images"):
        real_batches(graph, input_spec(vit, graph), None, "train", 2, 2, DataSource(str(tmp_path / "t.txt")))

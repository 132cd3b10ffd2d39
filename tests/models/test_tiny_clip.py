import json

import pytest

from spikemfm.app.zero_shot import zero_shot_accuracy
from spikemfm.errors import ModelLoadError
from spikemfm.models.tiny_clip import ASSET_DIR, META_FILE, WEIGHTS_FILE, load_tiny_clip, sha256_of


def test_checkpoint_sha256_matches_metadata():
    meta = json.loads((ASSET_DIR / META_FILE).read_text())
    assert sha256_of(ASSET_DIR / WEIGHTS_FILE) == meta["sha256"]
    assert meta["test_zero_shot_accuracy"] >= 0.85
    assert (ASSET_DIR / WEIGHTS_FILE).stat().st_size < 8 * 2**20


def test_corrupt_checkpoint_is_refused(tmp_path):
    for name in (WEIGHTS_FILE, META_FILE):
        (tmp_path / name).write_bytes((ASSET_DIR / name).read_bytes())
    data = bytearray((tmp_path / WEIGHTS_FILE).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256"):
        load_tiny_clip(tmp_path)


def test_zero_shot_accuracy_on_1000_test_images(tiny_clip, fmnist_test):
    clf = tiny_clip.zero_shot_classifier()
    acc = zero_shot_accuracy(lambda x: tiny_clip(x, clf), fmnist_test.subset(1000, seed=0), progress=False)
    assert acc >= 0.83


def test_text_tower_is_the_frozen_pretrained_minilm(tiny_clip):
    assert not any(p.requires_grad for p in tiny_clip.text.parameters())
    assert tiny_clip.text.bert.config.hidden_size == 384 and tiny_clip.text.bert.config.num_hidden_layers == 6

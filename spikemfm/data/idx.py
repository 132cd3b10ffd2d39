"""Reader for the IDX file format used by MNIST and Fashion-MNIST (optionally gzip-compressed)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from spikemfm.errors import DataError

# IDX type codes -> numpy dtypes (big-endian on disk).
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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
            raw = fh.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file is corrupt, reinstall it") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number); the file is corrupt, reinstall it")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: holds {len(raw) - header} data bytes, header {shape} says {expected}; "
            "the file is truncated or corrupt, reinstall it"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)

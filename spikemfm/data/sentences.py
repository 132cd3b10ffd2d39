"""Real English sentences for text-tower evaluation, from the Debian package ``fortunes-min``.

Its ``fortunes`` and ``literature`` files hold a few hundred short quotations written by people
(separated by ``%`` lines). We keep entries of 4–40 words with whitespace normalised.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

from spikemfm.errors import DataError

DEFAULT_DIR = Path("/usr/share/games/fortunes")
ENV_VAR = "SPIKEMFM_SENTENCES_DIR"
FILES = ("fortunes", "literature")


def load_sentences(n: int | None = None, seed: int = 0, root: Path | None = None) -> list[str]:
    """Real sentences, shuffled with ``seed``; the first ``n`` if given.

    Raises:
        DataError: the files are missing or hold too few sentences.
    """
    root = Path(root or os.environ.get(ENV_VAR, DEFAULT_DIR))
    texts: list[str] = []
    for name in FILES:
        path = root / name
        if not path.is_file():
            raise DataError(f"{path}: not found; install it with `sudo apt-get install fortunes-min` "
                            f"or point {ENV_VAR} at a folder with the files {FILES}")
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            words = entry.split()
            if 4 <= len(words) <= 40:
                texts.append(" ".join(words))
    if len(texts) < 50:
        raise DataError(f"{root}: only {len(texts)} sentences found; the fortunes files look corrupt")
    random.Random(seed).shuffle(texts)
    if n is not None:
        if n > len(texts):
            raise ValueError(f"load_sentences: n={n} exceeds the {len(texts)} sentences available")
        texts = texts[:n]
    return texts

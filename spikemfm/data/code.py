"""Real source code for calibrating and scoring code LMs: the Python standard library's own ``.py`` files, or any
file / folder of source (``code:PATH``).

The standard library's top-level modules are split by a hash of their file name (stable across machines and
Python patch releases): ``test`` (crc32 % 5 == 0), ``validation`` (== 1), ``calibration`` (the rest), so no file
serves two roles. Text is tokenized per file and cut into windows of ``length`` tokens (the last partial window
of a file dropped).
"""
from __future__ import annotations

import sysconfig
import zlib
from pathlib import Path
from typing import Any

import torch

from spikemfm.errors import DataError

SPLITS = ("calibration", "validation", "test")


def stdlib_files(split: str) -> list[Path]:
    """The standard library's top-level ``.py`` files of one split (sorted)."""
    if split not in SPLITS:
        raise DataError(f"code split {split!r}: choose one of {SPLITS}")
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.is_file())
    if len(files) < 50:
        raise DataError(f"{root}: only {len(files)} standard-library modules found; is this a full Python install?")
    want = {"test": (0,), "validation": (1,), "calibration": (2, 3, 4)}[split]
    return [p for p in files if zlib.crc32(p.name.encode()) % 5 in want]


def source_files(path: str | Path) -> list[Path]:
    """A source file, or every ``.py`` file under a folder (sorted); a clear error for anything else."""
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.py") if f.is_file())
        if files:
            return files
        raise DataError(f"{p}: no .py files under this folder")
    raise DataError(f"{p}: no such file or folder (give code:PATH with a source file or a folder of them)")


def code_windows(files: list[Path], tokenizer: Any, length: int, max_windows: int | None = None) -> torch.Tensor:
    """Token windows (W, length) cut from the files in order (at most ``max_windows``)."""
    if length < 2:
        raise DataError(f"code windows of {length} tokens: need at least 2 (one to predict from, one to score)")
    rows: list[torch.Tensor] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{f}: unreadable as UTF-8 source ({exc})") from exc
        ids = torch.tensor(tokenizer(text).input_ids, dtype=torch.long)
        rows += [ids[i:i + length] for i in range(0, ids.numel() - length + 1, length)]
        if max_windows is not None and len(rows) >= max_windows:
            break
    if not rows:
        raise DataError(f"{len(files)} source file(s) hold fewer than {length} tokens: nothing to score")
    return torch.stack(rows[:max_windows])

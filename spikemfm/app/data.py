"""Real input batches for a tower: Fashion-MNIST / real sentences by default, or the user's own data.

``data`` may name a folder of images (``.png``/``.jpg``/``.jpeg``/``.bmp``/``.webp``, sorted by name) or a text
file of sentences (one per non-empty line). Calibration and evaluation never share an input: of the user's data
and of the default sentences, calibration takes the even-numbered items and evaluation the odd-numbered ones; the
default images are Fashion-MNIST's training / test splits. Every call returns a note saying what was done to
the data (resizing, channel repetition, normalisation) so that summaries state it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from spikemfm.core.checks import check_field_types
from spikemfm.app.inputs import InputSpec
from spikemfm.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class DataSource:
    """Where a job's real inputs come from: ``None`` for the defaults, else an image folder or a text file."""

    path: str | None = None

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.path is not None and not Path(self.path).exists():
            raise ConfigError(f"data {self.path}: no such folder or file; give an image folder or a text file "
                              "of sentences (one per line)")


def fit_images(x: torch.Tensor, spec: InputSpec) -> tuple[torch.Tensor, list[str]]:
    """Pixels in [0, 1] (B, C, H, W) → the tower's channels, size and normalisation."""
    notes = []
    if x.shape[1] != spec.channels:
        if x.shape[1] == 1:
            x, _ = x.repeat(1, spec.channels, 1, 1), notes.append(f"grey repeated to {spec.channels} channels")
        elif spec.channels == 1:
            x, _ = x.mean(1, keepdim=True), notes.append("colour averaged to 1 channel")
        else:
            raise DataError(f"images have {x.shape[1]} channels, the tower takes {spec.channels}")
    if tuple(x.shape[-2:]) != (spec.size, spec.size):
        notes.append(f"resized {x.shape[-2]}x{x.shape[-1]} -> {spec.size}x{spec.size} (bilinear)")
        x = F.interpolate(x, size=(spec.size, spec.size), mode="bilinear", align_corners=False)
    mean = torch.tensor(spec.mean, dtype=x.dtype)[None, :, None, None]
    std = torch.tensor(spec.std, dtype=x.dtype)[None, :, None, None]
    notes.append(f"normalised with mean {spec.mean} / std {spec.std} ({spec.source})")
    return (x - mean) / std, notes


def _folder_images(folder: Path, split: str, n: int) -> torch.Tensor:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    files = files[0::2] if split == "train" else files[1::2]
    if not files:
        raise DataError(f"data {folder}: no {split} images (need at least 2 images {IMAGE_SUFFIXES}; calibration "
                        "takes the even-numbered files, evaluation the odd-numbered ones)")
    return read_images(files[:n])


def read_images(files: list[Path]) -> torch.Tensor:
    """RGB pixels in [0, 1] (N, 3, S, S), every image resized to the largest side S; one clear error per bad file."""
    from PIL import Image

    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                rgb = np.array(im.convert("RGB"), dtype=np.float32)  # (H, W, 3)
            images.append(torch.from_numpy(rgb).permute(2, 0, 1) / 255.0)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"data {f}: unreadable image ({exc})") from exc
    if not images:
        raise DataError("no images given")
    side = max(max(im.shape[-2:]) for im in images)  # one batch: bring every image to the largest side first
    return torch.stack([F.interpolate(im[None], size=(side, side), mode="bilinear", align_corners=False)[0]
                        for im in images])


def _images(data: DataSource, split: str, n: int) -> tuple[torch.Tensor, str]:
    if data.path is None:
        from spikemfm.data import load_fashion_mnist

        return load_fashion_mnist(split).subset(n, seed=0).tensors(normalize=False)[0], \
            f"Fashion-MNIST {split} split, 28x28 grey"
    folder = Path(data.path)
    if not folder.is_dir():
        raise DataError(f"data {folder}: an image tower needs a folder of images")
    x = _folder_images(folder, split, n)
    return x, f"{len(x)} images from {folder} ({'even' if split == 'train' else 'odd'}-numbered files)"


SENTENCE_SPLITS = {"train": "even-numbered", "test": "odd-numbered",
                   "fit": "even-numbered, all but every 5th", "val": "every 5th even-numbered"}


def sentence_split(data: DataSource, split: str, n: int) -> tuple[list[str], str]:
    """(up to ``n`` sentences of ``split``, a note saying which). train: the even-numbered lines, test: the odd ones;
    train's two parts for choices: val (every 5th even-numbered line) and fit (the rest of train)."""
    if split not in SENTENCE_SPLITS:
        raise ConfigError(f"sentence split {split!r}: choose one of {sorted(SENTENCE_SPLITS)}")
    if data.path is None:
        from spikemfm.data import load_sentences

        lines, where = load_sentences(), "real sentences (fortunes)"
    else:
        path = Path(data.path)
        try:
            lines = [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"data {path}: a text tower needs a UTF-8 text file of sentences ({exc})") from exc
        where = str(path)
    train = lines[0::2]
    chosen = {"train": train, "test": lines[1::2], "val": train[4::5],
              "fit": [t for i, t in enumerate(train) if i % 5 != 4]}[split][:n]
    if not chosen:
        raise DataError(f"data {where}: no {split} sentences (need at least 2 non-empty lines)")
    return chosen, f"{len(chosen)} sentences from {where} ({SENTENCE_SPLITS[split]})"


CODE_TOKENS = 32  # tokens per input of a causal LM: a window of real source code


def code_batches(tokenizer: Any, split: str, n: int, batch: int, data: DataSource) -> tuple[list[Any], str]:
    """Windows of :data:`CODE_TOKENS` tokens of real code for a causal LM: the standard library's calibration
    split for ``train``, its test split for ``test`` (the user's own ``--data`` is for images and sentences)."""
    from spikemfm.data.code import code_windows, stdlib_files

    if data.path is not None:
        raise ConfigError(f"--data {data.path}: a causal LM calibrates and evaluates on standard-library code; "
                          "drop --data (perplexity on your own code: spikemfm evaluate MODEL --data-set code:PATH)")
    part = "calibration" if split == "train" else "test"
    x = code_windows(stdlib_files(part), tokenizer, CODE_TOKENS, n)
    return list(x.split(batch)), f"{x.shape[0]} windows of {CODE_TOKENS} tokens, standard-library {part} split"


def real_batches(graph: Any, spec: InputSpec | None, tokenizer: Any, split: str, n: int, batch: int,
                 data: DataSource = DataSource()) -> tuple[list[Any], str]:
    """(batches of ``n`` real inputs for ``graph`` from ``split``, a note saying what the data is and how it
    was fitted to the tower)."""
    if split not in SPLITS:
        raise ConfigError(f"split {split!r}: choose one of {SPLITS}")
    if graph.input_kind == "image":
        if spec is None:
            raise ConfigError(f"{graph.name}: an image tower needs its InputSpec (spikemfm.app.input_spec)")
        x, what = _images(data, split, n)
        x, notes = fit_images(x, spec)
        return list(x.split(batch)), "; ".join([what, *notes])
    if tokenizer is None:
        raise ConfigError(f"{graph.name}: a text tower needs its tokenizer; load it by name (e.g. minilm, hf:<folder>)")
    if getattr(graph, "causal_lm", False):
        return code_batches(tokenizer, split, n, batch, data)
    sentences, what = sentence_split(data, split, n)
    return [tokenizer(sentences[i:i + batch]) for i in range(0, len(sentences), batch)], what

"""Evaluation loops shared by the CLI, experiments and tests."""
from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import tqdm

from spikemfm.data.fashion_mnist import ImageSplit


@torch.no_grad()
def zero_shot_accuracy(
    image_logits: Callable[[torch.Tensor], torch.Tensor],
    split: ImageSplit,
    batch_size: int = 500,
    progress: bool = True,
    desc: str = "zero-shot",
) -> float:
    """Top-1 accuracy of ``image_logits`` (images -> (B, C) scores) on ``split``.

    Args:
        image_logits: maps normalised images (B, 1, 28, 28) to class scores.
        split: labelled images.
        batch_size: images per forward pass.
        progress: show a progress bar.
        desc: progress bar label.
    """
    x, y = split.tensors()
    correct = 0
    for start in tqdm(range(0, len(y), batch_size), desc=desc, disable=not progress, unit="batch"):
        pred = image_logits(x[start:start + batch_size]).argmax(-1)
        correct += int((pred == y[start:start + batch_size]).sum())
    return correct / len(y)

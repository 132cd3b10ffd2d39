"""The main job behind ``spikemfm demo``; each pipeline stage adds its rows here."""
from __future__ import annotations

import time

from spikemfm.data import load_fashion_mnist
from spikemfm.evaluate import zero_shot_accuracy
from spikemfm.models.tiny_clip import load_tiny_clip


def run_demo(n_test: int = 10000, batch_size: int = 500, progress: bool = True) -> list[dict]:
    """Evaluates the bundled tiny CLIP on Fashion-MNIST test images.

    Returns:
        One row per pipeline stage: stage, images, accuracy, seconds.
    """
    model = load_tiny_clip()
    classifier = model.zero_shot_classifier()
    test = load_fashion_mnist("test")
    if n_test < len(test):
        test = test.subset(n_test)
    t0 = time.perf_counter()
    acc = zero_shot_accuracy(lambda x: model(x, classifier), test, batch_size, progress, "FP32 zero-shot")
    return [{"stage": "FP32 ANN", "images": len(test), "top1_accuracy": acc,
             "seconds": round(time.perf_counter() - t0, 2)}]

"""Shared fixtures. Heavy models are loaded once per session."""
from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def fmnist_test():
    from spikemfm.data import load_fashion_mnist

    return load_fashion_mnist("test")


@pytest.fixture(scope="session")
def minilm():
    from spikemfm.models.text import load_minilm

    return load_minilm()


@pytest.fixture(scope="session")
def tiny_clip():
    from spikemfm.models.tiny_clip import load_tiny_clip

    return load_tiny_clip()

"""Keeping the Hugging Face hub out of places where nothing may be fetched.

A saved model's metadata names its tokenizer's source (``hf:<repo>``, an open_clip architecture whose tokenizer
lives on the hub); reading that file must never download what it names. :func:`hub_offline` switches the hub
client to offline mode for a block (transformers and open_clip then read the local cache only). Hub names given
by the user are tried in the cache first, and the network only when the hub answers (:func:`hub_reachable`), so
an offline machine gets one clear error instead of a minute of retries.
"""
from __future__ import annotations

import contextlib
import os
import socket
from typing import Iterator
from urllib.parse import urlparse


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """No Hugging Face hub requests inside the block (the client raises instead; the cache still works).

    The hub client reads its offline flag from a module constant at request time, so the flag is set there for
    the block and restored after it (and the environment variable too, for code that reads it).
    """
    import huggingface_hub.constants as constants

    old_flag, old_env = constants.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE")
    constants.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old_flag
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the hub endpoint accepts a TCP connection within ``timeout_s`` (False in offline mode)."""
    import huggingface_hub.constants as constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                      timeout=timeout_s):
            return True
    except OSError:
        return False

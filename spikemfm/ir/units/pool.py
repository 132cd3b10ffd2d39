"""Token pooling of the accumulated stream: the one definition every backend runs (float, QANN, SNN,
the fixed-point reference and Lava's ``TokenPool`` models). Linear in x, so it reads the accumulated stream.

    cls           y = x[0]                    last   y = x[N−1]
    eot           y = x[i], i = argmax(ids) or the first position of ``eos_id``
    concat_prefix y = [x[0]; …; x[P−1]]        (P = ``prefix_tokens``, side by side: width P·D)
    avg_tokens    y = Σ_{n≥P} x[n] / (N − P)
    mean          y = Σ_n m[n]·x[n] / max(1, Σ_n m[n])     (m: the attention mask, all ones without one)
    tokens        y = x                       (every position: a causal language model's logits)

The integer form divides by floor division (Q.F values); the selections are exact on integers as they are.
(``map``, attention pooling with a learned query, is a small attention: :func:`spikemfm.ir.engine.attention_pool`.)
"""
from __future__ import annotations

import torch

POOLS = ("cls", "last", "eot", "mean", "avg_tokens", "concat_prefix", "map", "tokens")


def token_index(ids: torch.Tensor, eos_id: int | None) -> torch.Tensor:
    """The token ``eot`` pooling reads per sample: argmax(ids), or the first position of ``eos_id``."""
    if eos_id is None:
        return ids.argmax(-1)
    return (ids == eos_id).int().argmax(-1)


def _divide(total: torch.Tensor, count: torch.Tensor | int, integer: bool) -> torch.Tensor:
    return torch.div(total, count, rounding_mode="floor") if integer else total / count


def pool_tokens(x: torch.Tensor, kind: str, prefix_tokens: int = 1, eos_id: int | None = None,
                ids: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                integer: bool = False) -> torch.Tensor:
    """Pools (..., N, D) over tokens as ``kind`` (see the module docstring); ``integer``: floor division."""
    if kind == "tokens":
        return x
    if kind == "cls":
        return x[..., 0, :]
    if kind == "last":
        return x[..., -1, :]
    if kind == "concat_prefix":
        return x[..., :prefix_tokens, :].flatten(-2)
    if kind == "eot":
        idx = token_index(ids, eos_id)
        return x[..., torch.arange(idx.shape[0], device=idx.device), idx, :]
    if kind == "avg_tokens":
        tail = x[..., prefix_tokens:, :]
        return _divide(tail.sum(-2), tail.shape[-2], True) if integer else tail.mean(-2)
    if kind == "mean":
        m = (mask if mask is not None else torch.ones_like(ids)).to(x.dtype)[..., None]
        return _divide((x * m).sum(-2), m.sum(-2).clamp_min(1), integer)
    raise ValueError(f"pooling {kind!r} unsupported; supported: {POOLS}")

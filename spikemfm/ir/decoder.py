"""Incremental decoding of a causal-LM graph with a KV cache of integer levels.

A causal LM's K / V neurons settle to integer levels (the QANN's quantizer outputs; the SNN's spike counts once
quiet). The cache keeps them per attention: a new token runs only its own position through the stack, its query
attends to the cached levels and its own, and its K / V levels are appended. With S cached positions and N new
tokens at positions S … S+N−1:

    x0 = E[ids] + P[S … S+N−1]          (P: learned positions; zero for RoPE models, whose rotation takes S)
    K  = [K_cache ; K_new],  V = [V_cache ; V_new]      (levels, (B, H_kv, S+N, d))
    A  = softmax(Q Kᵀ/√d + M),  M[i, j] = −∞ for j > S+i              (causal over the whole sequence)

The integer products are exact, so each new token's levels equal those of a full-sequence recompute and the
logits agree; ``tests/ir/test_decoder.py`` asserts it bit for bit (float64 float path).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from spikemfm.ir import engine
from spikemfm.ir import nodes as N


@dataclass
class KVCache:
    """Cached K / V levels per attention path, (B, H_kv, S, d) each; ``length`` = S."""

    keys: dict[str, torch.Tensor] = field(default_factory=dict)
    values: dict[str, torch.Tensor] = field(default_factory=dict)
    length: int = 0

    def step(self) -> "CacheStep":
        """The view one forward pass (or one SNN time step) reads; :meth:`commit` appends what it produced."""
        return CacheStep(self, self.length)

    def commit(self, step: "CacheStep", tokens: int) -> None:
        """Appends the K / V levels the step's last pass produced for its ``tokens`` new positions."""
        if set(step.new) != set(self.keys) and self.keys:
            raise RuntimeError("KVCache.commit: the step did not produce K / V for every cached attention")
        for path, (k, v) in step.new.items():
            self.keys[path] = k if path not in self.keys else torch.cat([self.keys[path], k.to(self.keys[path])], -2)
            self.values[path] = v if path not in self.values else \
                torch.cat([self.values[path], v.to(self.values[path])], -2)
        self.length += tokens

    def truncate(self, length: int) -> None:
        """Keeps the first ``length`` positions (a speculative round's rejected drafts are dropped): the state equals
        a fresh prefill of those positions, since every cached level depends only on the positions before it."""
        if not 0 <= length <= self.length:
            raise ValueError(f"KVCache.truncate({length}): the cache holds {self.length} positions")
        for d in (self.keys, self.values):
            for path in d:
                d[path] = d[path][..., :length, :].contiguous()
        self.length = length

    def nbytes(self) -> int:
        """Bytes the cached levels take as stored."""
        return sum(t.numel() * t.element_size() for d in (self.keys, self.values) for t in d.values())

    def level_bits(self, qparams: Any) -> int:
        """Bits of the cached levels at their quantizers' widths (what a chip stores), all positions."""
        return sum(t.numel() * qparams.quants[path + suffix].bits
                   for d, suffix in ((self.keys, ".k"), (self.values, ".v")) for path, t in d.items())


@dataclass
class CacheStep:
    """What :func:`engine.attention` reads as ``kv``: the cached prefix's length and the cache to extend."""

    cache: KVCache
    start: int
    new: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def extend(self, a: N.Attention, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[cached; new] K and V levels of attention ``a``; remembers the new ones (the latest pass wins)."""
        self.new[a.path] = (k, v)
        ck, cv = self.cache.keys.get(a.path), self.cache.values.get(a.path)
        if ck is None:
            return k, v
        return torch.cat([ck.to(k.dtype), k], -2), torch.cat([cv.to(v.dtype), v], -2)


def causal_mask(start: int, n: int, device: torch.device) -> torch.Tensor:
    """(1, 1, n, start+n), True where blocked: new token i (position start+i) sees keys 0 … start+i."""
    keys = torch.arange(start + n, device=device)
    return (keys[None, :] > (start + torch.arange(n, device=device))[:, None])[None, None]


def check_ids(graph: N.EncoderGraph, ids: Any, start: int = 0) -> torch.Tensor:
    """Token ids (B, N) the causal LM can take at positions start …; one clear error otherwise."""
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.is_floating_point() or ids.is_complex() \
            or ids.dtype == torch.bool:
        raise ValueError(f"{graph.name}: token ids must be an integer (B, N) tensor, got "
                         f"{type(ids).__name__}{tuple(ids.shape) if isinstance(ids, torch.Tensor) else ''}")
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"{graph.name}: empty input {tuple(ids.shape)}: give at least one token (an empty prompt "
                         "has nothing to condition on)")
    vocab, context = int(graph.embed.word.shape[0]), int(graph.embed.pos.shape[0])
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        raise ValueError(f"{graph.name}: token ids must lie in [0, {vocab}) (the vocabulary); got "
                         f"{int(ids.min())}..{int(ids.max())}")
    if start + ids.shape[1] > context:
        raise ValueError(f"{graph.name}: {start + ids.shape[1]} positions exceed the model's context of {context} "
                         "tokens; shorten the prompt or generate fewer tokens")
    return ids.long()


def embed_at(node: N.TokenEmbed, ids: torch.Tensor, start: int, dtype: torch.dtype) -> torch.Tensor:
    """The embedding of ``ids`` at positions start … start+N−1 (word + position table)."""
    x = node.word.to(dtype)[ids] + node.pos.to(dtype)[start:start + ids.shape[1]]
    if node.norm is not None or node.types is not None or node.proj is not None:
        raise ValueError(f"{node.path}: a causal LM embedding has only word and position tables")
    return x


def forward_cached(graph: N.EncoderGraph, ids: torch.Tensor, ops: Any, dtype: torch.dtype, step: CacheStep,
                   x0: torch.Tensor | None = None) -> torch.Tensor:
    """Logits (B, N, vocab) of ``ids`` after the cached prefix (one pass of ``ops``; an SNN runs it per step and
    passes the same ``x0``)."""
    if not graph.causal_lm:
        raise ValueError(f"{graph.name}: not a causal language model (its readout pools {graph.readout.pool!r})")
    x0 = embed_at(graph.embed, ids, step.start, dtype) if x0 is None else x0
    mask = causal_mask(step.start, ids.shape[1], ids.device)
    x = ops.inject(x0)
    for b in graph.blocks:
        x = engine.block(b, x, mask, ops, step)
    return engine.readout(graph.readout, x, engine.Inputs(ids=ids), ops)

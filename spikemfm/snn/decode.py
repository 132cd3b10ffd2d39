"""One decoding pass of a spiking causal LM: the new tokens' positions stepped until their neurons settle, reading
the cached K / V levels (:mod:`spikemfm.ir.decoder`).

Per pass a fresh set of neuron states starts at rest (the new positions' neurons); the cached levels are the
counts earlier passes settled to, held constant. ``timesteps="settle"`` steps until the first step at which no
neuron moved — from then on every count sits at its target, so the logits equal the QANN's and the new K / V
counts are the levels to cache — or until :data:`SETTLE_LIMIT` steps; an int runs exactly that many steps
(the cache then holds whatever the counts reached: exact only if they had settled, which ``settled`` says).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from spikemfm.errors import ConfigError
from spikemfm.ir import decoder
from spikemfm.snn.record import Recorder
from spikemfm.snn.simulate import step_ops

SETTLE_LIMIT = 4096  # most steps a settle pass may take (binary spikes at 8 bits need up to ~255 per layer)


@dataclass(frozen=True)
class DecodePass:
    """One pass: ``logits`` (B, N, vocab) after the last step, ``steps`` run, whether the network was quiet
    (``settled``; then logits ≡ QANN), unit spikes over all layers and steps, and the recorder's statistics."""

    logits: torch.Tensor
    steps: int
    settled: bool
    spikes: float
    stats: tuple[dict, dict, dict]


def check_timesteps(timesteps: Any) -> int | None:
    """``"settle"`` → None, a positive int → itself; a clear error otherwise."""
    if timesteps == "settle":
        return None
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ConfigError(f"timesteps={timesteps!r}: give 'settle' or a positive integer")
    return timesteps


def snn_pass(snn: Any, ids: torch.Tensor, cache: decoder.KVCache, timesteps: Any = "settle",
             x0: torch.Tensor | None = None) -> DecodePass:
    """Runs the spiking stack on ``ids`` (B, N) after ``cache``'s prefix and appends their K / V counts;
    ``x0`` (B, N, D): input embeddings to use instead of the token table's (e.g. visual tokens)."""
    fixed = check_timesteps(timesteps)
    limit = SETTLE_LIMIT if fixed is None else fixed
    rec = Recorder(ids.shape[0], limit)
    rec.track_samples()
    ops = step_ops(snn, rec, fused=ids.device.type == "cpu")
    dtype = snn.quant_config.dtype
    step = cache.step()
    x0 = decoder.embed_at(snn.graph.embed, ids, cache.length, dtype) if x0 is None else x0.to(dtype)
    out, settled, t = None, False, 0
    with torch.no_grad():
        for t in range(limit):
            ops.next_step()
            out = decoder.forward_cached(snn.graph, ids, ops, dtype, step, x0)
            if not rec.moved[t].any():
                settled = True
                break
    cache.commit(step, ids.shape[1])
    stats = rec.finish()
    spikes = float(sum(float(s.spikes.sum()) for s in stats[0].values()))
    return DecodePass(out, t + 1, settled, spikes, stats)


CHUNK = 32  # positions per pass when a long input is run through the SNN: bounds its state, not its result


def chunked_pass(snn: Any, ids: torch.Tensor, cache: decoder.KVCache, timesteps: Any = "settle",
                 chunk: int = CHUNK, x0: torch.Tensor | None = None,
                 on_pass: Callable[[DecodePass], None] | None = None) -> tuple[torch.Tensor, int, float, bool]:
    """(logits (B, N, vocab), steps, spikes, settled) of ``ids`` after ``cache``, run ``chunk`` positions per
    pass: each chunk attends to the K / V levels the earlier ones cached, so (settled) the logits equal one pass
    over all positions — prefill + cached decode ≡ recompute — while the neurons' state holds ``chunk`` positions.
    ``on_pass`` sees each pass once its K / V levels are cached (e.g. to price it)."""
    parts, steps, spikes, settled = [], 0, 0.0, True
    embeds = [None] * len(ids.split(chunk, dim=1)) if x0 is None else list(x0.split(chunk, dim=1))
    for part, e in zip(ids.split(chunk, dim=1), embeds):
        p = snn_pass(snn, part, cache, timesteps, e)
        if on_pass is not None:
            on_pass(p)
        parts.append(p.logits)
        steps, spikes, settled = steps + p.steps, spikes + p.spikes, settled and p.settled
    return torch.cat(parts, 1), steps, spikes, settled

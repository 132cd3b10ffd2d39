"""Speculative decoding (Leviathan et al. 2023; Chen et al. 2023), greedy, with caches that roll back exactly.

Each round the assistant (draft) proposes γ tokens, one pass per token after catching up on what it has not
cached; the target verifies them in **one pass over γ + 1 positions** — the last kept token and the γ drafts —
through its KV cache. The longest prefix of drafts equal to the target's own greedy choices is kept, plus the
target's next token (its correction, or a bonus token when all γ agree); both caches drop every other position
(:meth:`~spikemfm.lm.generate.Runner.rollback`). With integer K / V levels (a QANN, or an SNN whose passes
settle) a pass over several positions gives the logits one position at a time gives, so the output equals the
target's plain greedy output bit for bit (``tests/lm/test_speculative.py``). A float target gives no such
guarantee: batched verification changes float logits (transformers issues #30042, #39421).

Expected tokens per target pass when each draft is accepted independently with probability α:
(1 − α^(γ+1)) / (1 − α) (Leviathan et al. 2023, eq. 1) — :func:`expected_tokens_per_pass`.

Drafts that share the target's tokenizer: :func:`first_layers` (self-speculative: the target's first k blocks and
its head), the same model quantized at fewer bits, or any small model with the same vocabulary.
"""
from __future__ import annotations

from typing import Any

import torch

from spikemfm.errors import ConfigError
from spikemfm.lm.runners import Emitter, Generation, Runner, margin, record


def speculate(target: Runner, draft: Runner, gen: Generation, n: int, gamma: int, emit: Emitter) -> None:
    """Fills ``gen`` (batch 1, prompt in ``gen.tokens``) with up to ``n`` tokens (module docstring)."""
    logits, steps, spikes, settled = target.run(gen.tokens)
    record(gen, gen.tokens.shape[1], steps, spikes, settled)
    vocab = logits.shape[-1]
    gen.margins.append(margin(logits[:, -1]))
    if emit(logits[:, -1].argmax(-1)):
        return
    emitted, cached = 1, 0  # tokens produced; positions the draft holds
    while emitted < n:
        seq = gen.tokens
        drafts, cached = propose(draft, seq, cached, min(gamma, n - emitted - 1), gen, vocab)
        block = torch.cat([seq[:, -1:], *(d[:, None] for d in drafts)], 1)
        logits, steps, spikes, settled = target.run(block)
        record(gen, block.shape[1], steps, spikes, settled)
        pred = logits[0].argmax(-1)
        k = 0
        while k < len(drafts) and int(drafts[k]) == int(pred[k]):
            k += 1
        gen.drafted.append(len(drafts))
        gen.accepted.append(k)
        keep = seq.shape[1] + k  # the last kept token and the accepted drafts; the target's own next is not cached
        target.rollback(keep)
        if cached > keep:
            draft.rollback(keep)
            cached = keep
        for j, tok in enumerate([*drafts[:k], pred[k:k + 1]]):
            emitted += 1
            gen.margins.append(margin(logits[:, j]))
            if emit(tok.reshape(1)):
                return


def propose(draft: Runner, seq: torch.Tensor, cached: int, gamma: int, gen: Generation, vocab: int
            ) -> tuple[list[torch.Tensor], int]:
    """(γ drafted tokens, positions the draft then holds): it first runs every position of ``seq`` it lacks."""
    drafts: list[torch.Tensor] = []
    feed = seq[:, cached:]
    for _ in range(gamma):
        logits, steps, _, _ = draft.run(feed)
        if logits.shape[-1] != vocab:
            raise ConfigError("generate: the assistant's vocabulary differs from the model's (same tokenizer needed)")
        gen.draft_steps.append(steps)
        cached += feed.shape[1]
        drafts.append(logits[:, -1].argmax(-1))
        feed = drafts[-1][:, None]
    return drafts, cached


def expected_tokens_per_pass(alpha: float, gamma: int) -> float:
    """(1 − α^(γ+1)) / (1 − α): tokens per target pass at acceptance α (γ + 1 when α = 1)."""
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha={alpha}: an acceptance rate lies in [0, 1]")
    return float(gamma + 1) if alpha == 1.0 else (1 - alpha ** (gamma + 1)) / (1 - alpha)


def first_layers(model: Any, k: int) -> Any:
    """A self-speculative draft: the QANN / SNN ``model`` with only its first ``k`` blocks, then its own final
    norm and head (the same quantizers; no new weights)."""
    from dataclasses import replace

    from spikemfm.convert.qann import QuantizedModel
    from spikemfm.snn.model import SpikingModel

    if not isinstance(model, (QuantizedModel, SpikingModel)) or not model.graph.causal_lm:
        raise ConfigError(f"first_layers: give a causal LM's QuantizedModel or SpikingModel, not {type(model).__name__}")
    blocks = model.graph.blocks
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < len(blocks):
        raise ConfigError(f"first_layers: k={k!r} must lie in 1 … {len(blocks) - 1} (the model has {len(blocks)} blocks)")
    graph = replace(model.graph, blocks=blocks[:k])
    if isinstance(model, QuantizedModel):
        return QuantizedModel(graph, model.qparams, model.config)
    return SpikingModel(QuantizedModel(graph, model.qparams, model.quant_config), model.config)

"""The cached-pass runners :func:`spikemfm.lm.generate` drives — one per model kind, each owning its KV cache —
and the record of a generation (:class:`Generation`), shared with :mod:`spikemfm.lm.speculative`."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from spikemfm.convert.qann import QANNOps, QuantizedModel
from spikemfm.errors import ConfigError
from spikemfm.ir import decoder
from spikemfm.snn.decode import chunked_pass
from spikemfm.snn.model import SpikingModel


@dataclass
class Generation:
    """A generation: ``tokens`` (B, L + new), and per target pass (prompt first) the positions it ran, the SNN's
    steps / unit spikes / whether it settled (1 / 0 / True for the float and quantized paths)."""

    tokens: torch.Tensor
    prompt_length: int
    path: str
    pass_tokens: list[int] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    spikes: list[float] = field(default_factory=list)
    settled: list[bool] = field(default_factory=list)
    kv_cache_bytes: int = 0
    drafted: list[int] = field(default_factory=list)  # speculative rounds: tokens the assistant proposed
    accepted: list[int] = field(default_factory=list)  # ... of which the target kept
    draft_steps: list[int] = field(default_factory=list)  # the assistant's steps per pass
    margins: list[float] = field(default_factory=list)  # per new token: top-1 minus top-2 probability (confidence)

    @property
    def acceptance(self) -> float | None:
        """Share of drafted tokens the target accepted (None without an assistant)."""
        return sum(self.accepted) / sum(self.drafted) if sum(self.drafted) else None

    @property
    def new_tokens(self) -> torch.Tensor:
        """The generated tokens (B, new)."""
        return self.tokens[:, self.prompt_length:]

    @property
    def target_passes(self) -> int:
        """Forward passes of the model (prefill + one per further token)."""
        return len(self.pass_tokens)

    @property
    def exact(self) -> bool:
        """Every SNN pass settled (its logits equal the QANN's); True for the other paths."""
        return all(self.settled)


class Runner:
    """One model's cached passes: ``run(ids)`` → logits (B, N, vocab) of ``ids`` after what it has seen."""

    path = ""

    def run(self, ids: torch.Tensor, x0: torch.Tensor | None = None) -> tuple[torch.Tensor, int, float, bool]:
        """(logits, steps, spikes, settled) of a pass on the new positions ``ids`` (``x0``: their input embeddings
        instead of the token table's, e.g. visual tokens)."""
        raise NotImplementedError

    def cache_bytes(self) -> int:
        return 0

    def rollback(self, length: int) -> None:
        """Drops every cached position from ``length`` on (speculative decoding's rejected drafts)."""
        raise ConfigError(f"{type(self).__name__}: this runner cannot roll its cache back (no speculative decoding)")


@functools.lru_cache(maxsize=1)
def cache_arg() -> str:
    """transformers 5 renamed ``past_key_values`` to ``cache`` (the old name warns, then goes in 5.40)."""
    import inspect

    from transformers import LlamaForCausalLM

    return "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"


class FloatRunner(Runner):
    """The float model itself with Hugging Face's KV cache."""

    path = "fp32"

    def __init__(self, model: nn.Module) -> None:
        self.model, self.past = model, None

    def run(self, ids, x0=None):
        inputs = {"input_ids": ids} if x0 is None else {"inputs_embeds": x0.to(self.model.dtype)}
        out = self.model(**inputs, **{cache_arg(): self.past}, use_cache=True)
        self.past = getattr(out, "cache", None) or out.past_key_values
        return out.logits, 1, 0.0, True

    def rollback(self, length):
        self.past.crop(length)


class QANNRunner(Runner):
    """The QANN with a cache of integer K / V levels."""

    path = "qann"

    def __init__(self, qann: QuantizedModel) -> None:
        self.qann, self.cache = qann, decoder.KVCache()

    def run(self, ids, x0=None):
        dtype = self.qann.config.dtype
        step = self.cache.step()
        logits = decoder.forward_cached(self.qann.graph, ids, QANNOps(self.qann.qparams, dtype), dtype, step,
                                        None if x0 is None else x0.to(dtype))
        self.cache.commit(step, ids.shape[1])
        return logits, 1, 0.0, True

    def cache_bytes(self):
        return self.cache.nbytes()

    def rollback(self, length):
        self.cache.truncate(length)


class SNNRunner(Runner):
    """The SNN, each pass stepped until its neurons settle (or ``timesteps`` steps)."""

    path = "snn"

    def __init__(self, snn: SpikingModel, timesteps: Any) -> None:
        self.snn, self.timesteps, self.cache = snn, timesteps, decoder.KVCache()

    def run(self, ids, x0=None):
        return chunked_pass(self.snn, ids, self.cache, self.timesteps, x0=x0)

    def cache_bytes(self):
        return self.cache.nbytes()

    def rollback(self, length):
        self.cache.truncate(length)


def margin(logits: torch.Tensor) -> float:
    """Top-1 minus top-2 softmax probability of next-token logits (..., vocab), averaged over rows."""
    top = torch.softmax(logits.double(), -1).topk(2, -1).values
    return float((top[..., 0] - top[..., 1]).mean())


def record(gen: Generation, tokens: int, steps: int, spikes: float, settled: bool) -> None:
    """One target pass over ``tokens`` positions into the generation's statistics."""
    gen.pass_tokens.append(tokens)
    gen.steps.append(steps)
    gen.spikes.append(spikes)
    gen.settled.append(settled)


class Emitter:
    """Appends new tokens to a generation: EOS padding of finished rows, streaming, stop conditions."""

    def __init__(self, gen: Generation, eos: int | None, on_token: Callable | None, stop_when: Callable | None):
        self.gen, self.eos, self.on_token, self.stop_when = gen, eos, on_token, stop_when
        self.done = torch.zeros(gen.tokens.shape[0], dtype=torch.bool)

    def __call__(self, tok: torch.Tensor) -> bool:
        """Appends ``tok`` (B,); True when generation must stop."""
        if self.eos is not None:
            tok = torch.where(self.done, torch.full_like(tok, self.eos), tok)
            self.done |= tok == self.eos
        self.gen.tokens = torch.cat([self.gen.tokens, tok[:, None]], 1)
        if self.on_token is not None:
            self.on_token(tok)
        if self.eos is not None and bool(self.done.all()):
            return True
        return self.stop_when is not None and bool(self.stop_when(self.gen.tokens))

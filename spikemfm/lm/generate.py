"""``generate``: greedy decoding with a KV cache for a float, quantized or spiking causal LM.

Each path keeps its own cache: the float model Hugging Face's (the library's own decoding), the QANN and the SNN
the integer K / V levels of :mod:`spikemfm.ir.decoder`. One *target pass* runs the model on the positions not yet
cached (the prompt, then one token at a time); the SNN steps each pass until its neurons settle
(``timesteps="settle"``), so its logits — and hence its tokens — equal the QANN's.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from spikemfm.convert.qann import QANNOps, QuantizedModel
from spikemfm.errors import ConfigError
from spikemfm.ir import decoder
from spikemfm.snn.decode import check_timesteps, chunked_pass
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

    def run(self, ids: torch.Tensor) -> tuple[torch.Tensor, int, float, bool]:
        """(logits, steps, spikes, settled) of a pass on the new positions ``ids``."""
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

    def run(self, ids):
        out = self.model(input_ids=ids, **{cache_arg(): self.past}, use_cache=True)
        self.past = getattr(out, "cache", None) or out.past_key_values
        return out.logits, 1, 0.0, True

    def rollback(self, length):
        self.past.crop(length)


class QANNRunner(Runner):
    """The QANN with a cache of integer K / V levels."""

    path = "qann"

    def __init__(self, qann: QuantizedModel) -> None:
        self.qann, self.cache = qann, decoder.KVCache()

    def run(self, ids):
        dtype = self.qann.config.dtype
        step = self.cache.step()
        logits = decoder.forward_cached(self.qann.graph, ids, QANNOps(self.qann.qparams, dtype), dtype, step)
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

    def run(self, ids):
        return chunked_pass(self.snn, ids, self.cache, self.timesteps)

    def cache_bytes(self):
        return self.cache.nbytes()

    def rollback(self, length):
        self.cache.truncate(length)


def runner_for(model: Any, timesteps: Any = "settle") -> Runner:
    """The cached-pass runner of a float causal LM, a QANN or an SNN of one, or ``model.runner()`` for another
    converter's model that provides its own (e.g. :class:`spikemfm.baselines.spikingjelly_qwen2.SpikingjellyLM`)."""
    if callable(getattr(model, "runner", None)):
        return model.runner()
    if isinstance(model, SpikingModel):
        _need_causal(model.graph)
        return SNNRunner(model, timesteps)
    if isinstance(model, QuantizedModel):
        _need_causal(model.graph)
        return QANNRunner(model)
    from spikemfm.ir.extract import extractor_for

    if isinstance(model, nn.Module) and extractor_for(model).name == "hf-causal-lm":
        return FloatRunner(model.eval())
    raise ConfigError(f"generate: {type(model).__name__} is not a causal language model (give a Hugging Face "
                      "Llama / Qwen2 / GPT-2 causal LM, or its QuantizedModel / SpikingModel)")


def _need_causal(graph) -> None:
    if not graph.causal_lm:
        raise ConfigError(f"generate: {graph.name} is not a causal language model (an encoder cannot generate)")


def _graph_of(model: Any):
    return model.graph if isinstance(model, (QuantizedModel, SpikingModel)) else None


def _check(model: Any, input_ids: Any, max_new_tokens: Any) -> torch.Tensor:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ConfigError(f"generate: max_new_tokens={max_new_tokens!r} must be a positive integer")
    if callable(getattr(model, "runner", None)):  # another converter's model: ids checked against its vocabulary
        ids = torch.as_tensor(input_ids)
        if ids.dim() != 2 or ids.dtype != torch.long or ids.numel() == 0 or int(ids.min()) < 0 \
                or int(ids.max()) >= model.vocab_size:
            raise ConfigError(f"generate: input_ids must be a non-empty (B, L) long tensor of ids < {model.vocab_size}")
        return ids
    graph = _graph_of(model)
    if graph is None:
        from spikemfm.ir.extract import extract

        graph = extract(model)
    try:
        return decoder.check_ids(graph, input_ids, max_new_tokens - 1)
    except ValueError as exc:
        raise ConfigError(f"generate: {exc}") from None


@torch.no_grad()
def generate(model: Any, input_ids: Any, max_new_tokens: int, *, assistant: Any = None, num_assistant_tokens: int = 4,
             timesteps: Any = "settle", eos_token_id: int | None = None,
             on_token: Callable[[torch.Tensor], None] | None = None,
             stop_when: Callable[[torch.Tensor], bool] | None = None) -> Generation:
    """Greedy generation of up to ``max_new_tokens`` tokens after ``input_ids`` (B, L) (equal-length prompts).

    Args:
        model: a Hugging Face causal LM (float), its :class:`QuantizedModel` or its :class:`SpikingModel`.
        assistant, num_assistant_tokens: speculative decoding (:mod:`spikemfm.lm.speculative`, batch 1): the
            assistant (any model ``model`` may be, same tokenizer) drafts that many tokens per round and the model
            verifies them in one pass; with a quantized or spiking target the output equals plain greedy's.
        timesteps: the SNN's steps per pass: ``"settle"`` (until quiet: exact) or a fixed count.
        eos_token_id: stop once every sequence has produced it (later positions of finished rows repeat it).
        on_token: called with each new token column (B,) as it is produced (streaming).
        stop_when: called with the tokens so far (B, L + new) after each new token; True stops (stop sequences).
    """
    check_timesteps(timesteps)
    if isinstance(num_assistant_tokens, bool) or not isinstance(num_assistant_tokens, int) or num_assistant_tokens < 1:
        raise ConfigError(f"generate: num_assistant_tokens={num_assistant_tokens!r} must be a positive integer")
    runner = runner_for(model, timesteps)
    ids = _check(model, input_ids, max_new_tokens)
    gen = Generation(ids, ids.shape[1], runner.path)
    emit = Emitter(gen, eos_token_id, on_token, stop_when)
    if assistant is not None:
        from spikemfm.lm.speculative import speculate

        if ids.shape[0] != 1:
            raise ConfigError(f"generate: speculative decoding takes one prompt (batch 1), got {ids.shape[0]}")
        _check(assistant, ids, max_new_tokens)
        speculate(runner, runner_for(assistant, timesteps), gen, max_new_tokens, num_assistant_tokens, emit)
    else:
        nxt = ids
        for _ in range(max_new_tokens):
            logits, steps, spikes, settled = runner.run(nxt)
            record(gen, nxt.shape[1], steps, spikes, settled)
            tok = logits[:, -1].argmax(-1)
            gen.margins.append(margin(logits[:, -1]))
            if emit(tok):
                break
            nxt = tok[:, None]
    gen.kv_cache_bytes = runner.cache_bytes()
    return gen


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

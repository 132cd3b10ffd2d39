"""``generate``: greedy decoding with a KV cache for a float, quantized or spiking causal LM.

Each path keeps its own cache: the float model Hugging Face's (the library's own decoding), the QANN and the SNN
the integer K / V levels of :mod:`spikemfm.ir.decoder`. One *target pass* runs the model on the positions not yet
cached (the prompt, then one token at a time); the SNN steps each pass until its neurons settle
(``timesteps="settle"``), so its logits — and hence its tokens — equal the QANN's.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from spikemfm.convert.qann import QuantizedModel
from spikemfm.errors import ConfigError
from spikemfm.ir import decoder
from spikemfm.lm.runners import (Emitter, FloatRunner, Generation, QANNRunner, Runner, SNNRunner, margin, record)
from spikemfm.lm.speculative import speculate
from spikemfm.snn.decode import check_timesteps
from spikemfm.snn.model import SpikingModel


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



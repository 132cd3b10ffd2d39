"""spikingjelly 2.0's Qwen2 decoder conversion (the field's own recipe) on a LLaMA-family model's real weights.

spikingjelly's ``ann2snn.recipes.qwen2`` converts a Hugging Face ``Qwen2ForCausalLM``: signed QCFS encoders at
the model input and at every layer's Q / K / V and MLP inputs turn activations into T-step signed spike trains
(per-channel steps from ``calibration_levels`` on calibration text), while RMSNorm, SiLU, softmax, the rotary
embedding, Q·Kᵀ / A·V and the Linear layers run as floating-point "TD" operators over the T steps; the logits
are the head applied to the sum over T. spikemfm keeps nothing in floating point on the spiking path (integer
levels, settle-exact SNN ≡ QANN); this module runs spikingjelly's recipe unchanged on the same weights.

A LLaMA is a Qwen2 without the Q / K / V biases, so :func:`llama_to_qwen2` loads the LLaMA weights into a Qwen2 of
the same shape with those biases at zero and no sliding window: the logits are identical (tested on a
random-init LLaMA). :class:`SpikingjellyLM` wraps the converted model for :func:`spikemfm.lm.generate` and the
HumanEval harness (one cached pass per new position, neuron state reset before each, as spikingjelly's own
``generate`` does).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn

from spikemfm.errors import ConfigError
from spikemfm.lm.runners import Runner


def llama_to_qwen2(llama: nn.Module) -> nn.Module:
    """A ``Qwen2ForCausalLM`` holding ``llama``'s weights (zero Q / K / V biases, full attention), in eval mode."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    c = llama.config
    if getattr(c, "model_type", None) != "llama":
        raise ConfigError(f"llama_to_qwen2: a {getattr(c, 'model_type', type(llama).__name__)} model; give a "
                          "Hugging Face LlamaForCausalLM")
    if getattr(c, "attention_bias", False) or getattr(c, "mlp_bias", False):
        raise ConfigError("llama_to_qwen2: the LLaMA has attention / MLP biases Qwen2 cannot hold (o_proj, MLP)")
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    if head_dim * c.num_attention_heads != c.hidden_size:
        raise ConfigError(f"llama_to_qwen2: head_dim {head_dim} x {c.num_attention_heads} heads != hidden size "
                          f"{c.hidden_size}; Qwen2 derives head_dim from the hidden size")
    q = Qwen2Config(vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                    num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                    num_key_value_heads=c.num_key_value_heads, hidden_act=c.hidden_act,
                    max_position_embeddings=c.max_position_embeddings, rms_norm_eps=c.rms_norm_eps,
                    rope_parameters=dict(c.rope_parameters), tie_word_embeddings=c.tie_word_embeddings,
                    use_sliding_window=False, attention_dropout=0.0, bos_token_id=c.bos_token_id,
                    eos_token_id=c.eos_token_id, pad_token_id=c.pad_token_id)
    model = Qwen2ForCausalLM(q).to(next(llama.parameters()).dtype)
    missing, unexpected = model.load_state_dict(llama.state_dict(), strict=False)
    biases = {k for k in missing if k.endswith(("q_proj.bias", "k_proj.bias", "v_proj.bias"))}
    if set(missing) - biases - {"lm_head.weight"} or unexpected:
        raise ConfigError(f"llama_to_qwen2: weights that do not map: missing {sorted(set(missing) - biases)[:4]}, "
                          f"unexpected {sorted(unexpected)[:4]}")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in biases:
                p.zero_()
    if c.tie_word_embeddings:
        model.tie_weights()
    return model.eval()


@dataclass(frozen=True)
class SJConfig:
    """spikingjelly's conversion settings: ``time_steps`` T and the QCFS ``levels`` (≤ T; its default is 16 at
    T = 32, i.e. levels = min(16, T) keeps its recommended resolution at every T)."""

    time_steps: int
    levels: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.time_steps, bool) or not isinstance(self.time_steps, int) or self.time_steps < 1:
            raise ConfigError(f"SJConfig.time_steps={self.time_steps!r}: a positive integer")
        if self.levels is not None and not 1 <= self.levels <= self.time_steps:
            raise ConfigError(f"SJConfig.levels={self.levels!r}: spikingjelly needs 1 <= levels <= T")

    @property
    def calibration_levels(self) -> int:
        return self.levels if self.levels is not None else min(16, self.time_steps)


def sj_convert(qwen2: nn.Module, calibration: Iterable[torch.Tensor], cfg: SJConfig) -> nn.Module:
    """spikingjelly's recipe, unchanged: ``calibrate_qwen2_snn`` on the calibration token windows, then
    ``ModuleConverter(Qwen2SNNRecipe)``; returns the converted ``Qwen2SNNModel`` in eval mode."""
    from spikingjelly.activation_based.ann2snn import ModuleConverter
    from spikingjelly.activation_based.ann2snn.recipes.qwen2 import (Qwen2SNNConfig, Qwen2SNNRecipe,
                                                                     calibrate_qwen2_snn)

    conf = Qwen2SNNConfig(time_steps=cfg.time_steps, calibration_levels=cfg.calibration_levels)
    batches = [{"input_ids": w, "attention_mask": torch.ones_like(w)} for w in calibration]
    with torch.no_grad():
        cal = calibrate_qwen2_snn(qwen2, batches, conf)
    return ModuleConverter(Qwen2SNNRecipe(cal, conf)).convert(qwen2).eval()


def reset(snn: nn.Module) -> None:
    """Every neuron / encoder back to its initial state (spikingjelly's ``generate`` does this before each chunk)."""
    for m in snn.modules():
        fn = getattr(m, "reset", None)
        if callable(fn) and m is not snn:
            fn()


@torch.no_grad()
def sj_logits(snn: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Full-sequence logits (B, N, vocab) of the converted model on token windows ``ids`` (B, N)."""
    reset(snn)
    return snn(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


class SJRunner(Runner):
    """Cached passes of a converted model for :func:`spikemfm.lm.generate`: each pass runs T steps."""

    path = "spikingjelly"

    def __init__(self, snn: nn.Module) -> None:
        self.snn, self.cache, self.mask = snn, None, None

    def run(self, ids: torch.Tensor, x0: torch.Tensor | None = None) -> tuple[torch.Tensor, int, float, bool]:
        if x0 is not None:
            raise ConfigError("spikingjelly's converted Qwen2 takes token ids only (no input embeddings)")
        reset(self.snn)
        new = torch.ones_like(ids)
        self.mask = new if self.mask is None else torch.cat([self.mask, new], 1)
        out = self.snn(input_ids=ids, attention_mask=self.mask, past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        return out.logits, self.snn.time_steps, 0.0, True


class SpikingjellyLM:
    """A converted model as :func:`spikemfm.lm.generate` takes it (``runner()``: a fresh cached-pass runner)."""

    def __init__(self, snn: nn.Module) -> None:
        self.snn = snn
        self.vocab_size = int(snn.config.vocab_size)

    def runner(self) -> Runner:
        return SJRunner(self.snn)


def structure(snn: nn.Module) -> dict[str, Any]:
    """What the converted model keeps in floating point, from spikingjelly's own ``structure_summary``."""
    return dict(snn.structure_summary())


@torch.no_grad()
def sj_token_energy(snn: nn.Module, prompt: torch.Tensor) -> dict[str, Any]:
    """spikingjelly's own estimator (``op_counter.estimate_simple_energy``: Horowitz 45 nm fp32 MAC 4.6 pJ / AC
    0.9 pJ, its own memory terms) on one cached decode pass: the token after ``prompt`` (1, L), as generated."""
    from spikingjelly.activation_based.op_counter.simple_energy import estimate_simple_energy

    runner = SJRunner(snn)
    logits, _, _, _ = runner.run(prompt)
    tok = logits[:, -1:].argmax(-1)
    reset(snn)
    mask = torch.cat([runner.mask, torch.ones_like(tok)], 1)
    r = estimate_simple_energy(snn, {"input_ids": tok, "attention_mask": mask, "past_key_values": runner.cache,
                                     "use_cache": True})
    return {"sj_energy_nj": r.energy_total_pj / 1e3, "sj_mac": r.counts["mac"], "sj_ac": r.counts["ac"],
            "sj_memory_nj": r.energy_memory_pj / 1e3}

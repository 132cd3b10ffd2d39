"""Random-init causal LMs of the real architectures (tiny configs), shared by the decoder tests."""
from __future__ import annotations

import pytest
import torch

VOCAB = 97


def tiny_lm(family: str, seed: int = 0) -> torch.nn.Module:
    """A random-init tiny causal LM: ``llama`` (grouped-query, untied head), ``qwen2`` (q/k/v biases, tied) or
    ``gpt2`` (learned positions, Conv1D)."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=48, bos_token_id=1, eos_token_id=2,
                  pad_token_id=0)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=False))
    elif family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common, tie_word_embeddings=True))
    else:
        model = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=48,
                                           bos_token_id=1, eos_token_id=2))
    return model.eval()


@pytest.fixture(scope="module", params=["llama", "qwen2", "gpt2"])
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def lm_set(family):
    """(float model, 8-bit QANN, graded SNN, calibration ids) of one family."""
    import spikemfm

    model = tiny_lm(family)
    calib = [torch.randint(0, VOCAB, (4, 24), generator=torch.Generator().manual_seed(i)) for i in range(2)]
    qann = spikemfm.quantize(model, spikemfm.QuantConfig(bits=8), calib)
    snn = spikemfm.convert(qann, spikemfm.ConvertConfig(max_spikes_per_step=None))
    return model, qann, snn, calib

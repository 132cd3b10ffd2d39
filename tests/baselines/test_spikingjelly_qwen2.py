"""spikingjelly's Qwen2 recipe on LLaMA weights: the mapping is exact, the converted model runs through
spikemfm.generate with its own cache (cached decode ≡ recompute), and its error shrinks with T."""
from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from spikemfm.lm import generate
from spikemfm.baselines.spikingjelly_qwen2 import (SJConfig, SpikingjellyLM, llama_to_qwen2, sj_convert,
                                                   sj_logits)
from spikemfm.errors import ConfigError


@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(0)
    c = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True)
    return LlamaForCausalLM(c).eval()


def test_llama_weights_in_qwen2_give_identical_logits(llama):
    qwen2 = llama_to_qwen2(llama)
    assert qwen2.config.model_type == "qwen2" and not qwen2.config.use_sliding_window
    assert all(float(layer.self_attn.q_proj.bias.detach().abs().max()) == 0 for layer in qwen2.model.layers)
    ids = torch.randint(0, 96, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(llama(input_ids=ids).logits, qwen2(input_ids=ids).logits)


def test_mapping_refuses_a_non_llama(llama):
    with pytest.raises(ConfigError, match="LlamaForCausalLM"):
        llama_to_qwen2(llama_to_qwen2(llama))
    with pytest.raises(ConfigError, match="levels"):
        SJConfig(8, levels=16)


def test_converted_model_generates_through_spikemfm_with_its_cache(llama):
    g = torch.Generator().manual_seed(2)
    calib = [torch.randint(0, 96, (1, 16), generator=g) for _ in range(2)]
    snn = sj_convert(llama_to_qwen2(llama), calib, SJConfig(8))
    prompt = torch.randint(0, 96, (1, 6), generator=g)
    gen = generate(SpikingjellyLM(snn), prompt, 4)
    assert gen.path == "spikingjelly" and gen.new_tokens.shape == (1, 4) and gen.steps == [8] * 4
    # recompute: each generated token is the argmax of a fresh full pass over everything before it
    for i in range(4):
        seq = gen.tokens[:, :6 + i]
        assert int(sj_logits(snn, seq)[0, -1].argmax()) == int(gen.new_tokens[0, i])
    with pytest.raises(ConfigError, match="input_ids"):
        generate(SpikingjellyLM(snn), torch.tensor([[96]]), 2)


def test_error_against_the_float_model_shrinks_with_time_steps(llama):
    g = torch.Generator().manual_seed(3)
    qwen2 = llama_to_qwen2(llama)
    calib = [torch.randint(0, 96, (1, 24), generator=g) for _ in range(2)]
    ids = torch.randint(0, 96, (1, 12), generator=g)
    with torch.no_grad():
        ref = qwen2(input_ids=ids).logits
    err = [float((sj_logits(sj_convert(qwen2, calib, SJConfig(t)), ids) - ref).abs().max()) for t in (2, 32)]
    assert err[1] < err[0]

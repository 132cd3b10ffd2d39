"""Causal LMs: faithful extraction, SNN ≡ QANN, prefill + cached decode ≡ recompute (bit for bit), generate."""
from __future__ import annotations

import pytest
import torch

import spikemfm
from spikemfm.convert.qann import QANNOps
from spikemfm.ir import decoder
from spikemfm.lm import generate
from spikemfm.snn.decode import snn_pass

from .conftest import VOCAB, tiny_lm

IDS = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(7))
CHUNKS = [(0, 4), (4, 5), (5, 6), (6, 11)]  # a prompt, two single tokens, a block of five


def test_graph_reproduces_the_model(lm_set):
    model, qann, _, _ = lm_set
    assert qann.fidelity is not None and qann.fidelity.first_divergence is None
    assert qann.graph.causal_lm
    with torch.no_grad():
        ref = model(IDS).logits.double()
    assert torch.allclose(qann.float_forward(IDS), ref, rtol=0, atol=1e-5 * float(ref.abs().max()))


def test_8bit_qann_close_to_fp32(lm_set):
    model, qann, _, _ = lm_set
    with torch.no_grad():
        ref = model(IDS).logits.double()
    y = qann(IDS)
    assert y.shape == (2, 11, VOCAB)
    assert float((y - ref).norm() / ref.norm()) < 0.05


def test_qann_cached_decode_equals_recompute(lm_set):
    _, qann, _, _ = lm_set
    full = qann(IDS)
    cache, outs = decoder.KVCache(), []
    for s, e in CHUNKS:
        step = cache.step()
        outs.append(decoder.forward_cached(qann.graph, IDS[:, s:e], QANNOps(qann.qparams), torch.float64, step))
        cache.commit(step, e - s)
    assert torch.equal(torch.cat(outs, 1), full)
    assert cache.length == IDS.shape[1]


@pytest.mark.parametrize("max_spikes", [None, 4])
def test_snn_cached_decode_equals_qann(lm_set, max_spikes):
    _, qann, _, _ = lm_set
    snn = spikemfm.convert(qann, spikemfm.ConvertConfig(max_spikes_per_step=max_spikes))
    full = qann(IDS)
    cache, outs = decoder.KVCache(), []
    for s, e in CHUNKS:
        p = snn_pass(snn, IDS[:, s:e], cache)
        assert p.settled and p.spikes > 0
        outs.append(p.logits)
    assert torch.equal(torch.cat(outs, 1), full)


def test_snn_full_sequence_equals_qann(lm_set):
    _, qann, snn, _ = lm_set
    r = spikemfm.simulate(snn, IDS, 8, adaptive=True)
    assert bool(r.settled.all())
    assert torch.equal(r.output, qann(IDS))


@pytest.mark.parametrize("chunk", [1, 3, 11])
def test_chunked_snn_pass_equals_qann(lm_set, chunk):
    from spikemfm.lm.perplexity import logits_of
    from spikemfm.snn.decode import chunked_pass

    _, qann, snn, _ = lm_set
    logits, steps, _, settled = chunked_pass(snn, IDS, decoder.KVCache(), chunk=chunk)
    assert settled and steps >= -(-IDS.shape[1] // chunk)
    assert torch.equal(logits, qann(IDS))
    assert torch.equal(logits_of(snn, IDS), logits)


def test_generate_paths_agree(lm_set):
    model, qann, snn, _ = lm_set
    prompt = IDS[:, :5]
    fp = generate(model, prompt, 6)
    with torch.no_grad():
        hf = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(fp.tokens, hf)  # the float path is Hugging Face's own greedy decoding
    q, s = generate(qann, prompt, 6), generate(snn, prompt, 6)
    assert torch.equal(q.tokens, s.tokens) and s.exact
    assert s.target_passes == 6 and s.pass_tokens == [5, 1, 1, 1, 1, 1]
    assert all(st >= 2 for st in s.steps) and all(sp > 0 for sp in s.spikes)
    assert s.kv_cache_bytes > 0


def test_generate_stops_at_eos(lm_set):
    _, qann, _, _ = lm_set
    prompt = IDS[:1, :5]
    new = generate(qann, prompt, 10).new_tokens[0].tolist()
    eos = new[3]  # call the fourth new token "eos": generation stops at its first occurrence
    g = generate(qann, prompt, 10, eos_token_id=eos)
    assert g.new_tokens[0].tolist() == new[:new.index(eos) + 1]


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(1, 0, dtype=torch.long), "empty"),
    (torch.full((1, 3), VOCAB), "vocabulary"),
    (torch.full((1, 3), -1), "vocabulary"),
    (torch.zeros(1, 3), "integer"),
    (torch.zeros(1, 47, dtype=torch.long), "context"),
])
def test_generate_refuses_bad_ids(lm_set, bad, match):
    _, qann, _, _ = lm_set
    with pytest.raises(spikemfm.ConfigError, match=match):
        generate(qann, bad, 4)


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_generate_refuses_bad_lengths(lm_set, n):
    _, qann, _, _ = lm_set
    with pytest.raises(spikemfm.ConfigError, match="max_new_tokens"):
        generate(qann, IDS[:, :3], n)


def test_unsupported_family_is_one_clear_error():
    from transformers import MistralConfig, MistralForCausalLM

    m = MistralForCausalLM(MistralConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2))
    with pytest.raises(spikemfm.UnsupportedModuleError, match="MistralForCausalLM"):
        spikemfm.quantize(m, spikemfm.QuantConfig(bits=8), [IDS])
    with pytest.raises(spikemfm.UnsupportedModuleError, match="MistralForCausalLM"):
        generate(m, IDS, 2)
    with pytest.raises(spikemfm.UnsupportedModuleError, match="not a supported transformer"):
        generate(torch.nn.Linear(2, 2), IDS, 2)


def test_encoder_cannot_generate():
    from spikemfm.models.text import small_bert

    q = spikemfm.quantize(small_bert(vocab=VOCAB), spikemfm.QuantConfig(bits=8), [IDS])
    with pytest.raises(spikemfm.ConfigError, match="not a causal language model"):
        generate(q, IDS, 2)


def test_gqa_shares_kv_heads():
    g = spikemfm.quantize(tiny_lm("llama"), spikemfm.QuantConfig(bits=8), [IDS]).graph
    a = g.blocks[0].attn
    assert (a.num_heads, a.kv_heads) == (4, 2) and a.k.weight.shape[0] == 2 * 8

"""Speculative decoding: output ≡ the target's plain greedy output, bit for bit, for every draft kind; rejections
at the first and the last drafted position; EOS inside a draft; cache rollback ≡ a fresh prefill."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import spikemfm
from spikemfm.convert.qann import QANNOps
from spikemfm.errors import ConfigError
from spikemfm.ir import decoder
from spikemfm.lm import generate
from spikemfm.lm.runners import QANNRunner, Runner
from spikemfm.lm.speculative import expected_tokens_per_pass, first_layers

from .conftest import VOCAB, tiny_lm


@pytest.fixture(scope="module")
def llama_set():
    model = tiny_lm("llama")
    calib = [torch.randint(0, VOCAB, (4, 24), generator=torch.Generator().manual_seed(i)) for i in range(2)]
    q8 = spikemfm.quantize(model, spikemfm.QuantConfig(bits=8), calib)
    q4 = spikemfm.quantize(model, spikemfm.QuantConfig(bits=4), calib)
    return q8, q4


class Corrupted(Runner):
    """The target's own QANN, except that its prediction after each absolute position in ``wrong`` is changed:
    a draft whose rejections fall exactly where a test wants them."""

    path = "corrupted"

    def __init__(self, qann, wrong: set[int]) -> None:
        self.inner, self.wrong, self.length = QANNRunner(qann), wrong, 0

    def run(self, ids):
        logits, *rest = self.inner.run(ids)
        logits = logits.clone()
        for i in range(ids.shape[1]):
            if self.length + i in self.wrong:
                top = int(logits[0, i].argmax())
                logits[0, i, (top + 1) % VOCAB] = logits[0, i, top] + 1
        self.length += ids.shape[1]
        return (logits, *rest)

    def rollback(self, length):
        self.inner.rollback(length)
        self.length = length


class Draft:
    """A model that brings its own runner (what generate takes as an assistant)."""

    vocab_size = VOCAB

    def __init__(self, qann, wrong):
        self.qann, self.wrong = qann, set(wrong)

    def runner(self):
        return Corrupted(self.qann, self.wrong)


def prompt(n: int, seed: int) -> torch.Tensor:
    return torch.randint(3, VOCAB, (1, n), generator=torch.Generator().manual_seed(seed))


@settings(max_examples=25, deadline=None)
@given(length=st.integers(1, 8), gamma=st.integers(1, 5), n=st.integers(1, 12), seed=st.integers(0, 99),
       wrong=st.sets(st.integers(0, 24), max_size=8))
def test_speculative_equals_plain_greedy(llama_set, length, gamma, n, seed, wrong):
    q8, _ = llama_set
    ids = prompt(length, seed)
    plain = generate(q8, ids, n)
    spec = generate(q8, ids, n, assistant=Draft(q8, wrong), num_assistant_tokens=gamma)
    assert torch.equal(spec.tokens, plain.tokens)
    assert all(0 <= a <= d <= gamma for a, d in zip(spec.accepted, spec.drafted))
    assert spec.target_passes <= plain.target_passes


def test_rejections_at_the_first_and_last_drafted_position(llama_set):
    q8, _ = llama_set
    ids = prompt(5, 1)
    # round 1 drafts after positions 5, 6, 7 (gamma 3): wrong at 5 rejects its first draft; round 2 starts at
    # position 6 and drafts after 6, 7, 8: wrong at 8 rejects its last draft
    spec = generate(q8, ids, 9, assistant=Draft(q8, {5, 8}), num_assistant_tokens=3)
    assert spec.accepted[:2] == [0, 2] and spec.drafted[:2] == [3, 3]
    assert torch.equal(spec.tokens, generate(q8, ids, 9).tokens)
    full = generate(q8, ids, 9, assistant=Draft(q8, set()), num_assistant_tokens=3)
    assert full.accepted == [3, 3] and full.target_passes == 3  # prefill + 2 rounds of 3 drafts + 1 bonus each


def test_eos_inside_a_draft(llama_set):
    q8, _ = llama_set
    ids = prompt(4, 2)
    plain = generate(q8, ids, 10)
    eos = int(plain.new_tokens[0, 3])
    want = generate(q8, ids, 10, eos_token_id=eos)
    got = generate(q8, ids, 10, eos_token_id=eos, assistant=Draft(q8, set()), num_assistant_tokens=4)
    assert torch.equal(got.tokens, want.tokens) and int(got.tokens[0, -1]) == eos


def test_spiking_target_with_fewer_bit_and_self_speculative_drafts(llama_set):
    q8, q4 = llama_set
    snn8 = spikemfm.convert(q8, spikemfm.ConvertConfig(max_spikes_per_step=None))
    snn4 = spikemfm.convert(q4, spikemfm.ConvertConfig(max_spikes_per_step=None))
    ids = prompt(6, 3)
    plain = generate(snn8, ids, 8)
    for draft in (snn4, first_layers(snn8, 1), first_layers(q8, 1)):
        spec = generate(snn8, ids, 8, assistant=draft, num_assistant_tokens=3)
        assert torch.equal(spec.tokens, plain.tokens) and spec.exact
        assert spec.draft_steps and sum(spec.drafted) > 0


def test_rollback_equals_a_fresh_prefill(llama_set):
    q8, _ = llama_set
    ids = prompt(12, 4)

    def prefill(x):
        cache = decoder.KVCache()
        step = cache.step()
        decoder.forward_cached(q8.graph, x, QANNOps(q8.qparams), torch.float64, step)
        cache.commit(step, x.shape[1])
        return cache

    long, short = prefill(ids), prefill(ids[:, :7])
    long.truncate(7)
    assert long.length == short.length == 7
    assert all(torch.equal(long.keys[p], short.keys[p]) and torch.equal(long.values[p], short.values[p])
               for p in short.keys)
    with pytest.raises(ValueError, match="holds 7"):
        long.truncate(8)


def test_formula_and_refusals(llama_set):
    q8, _ = llama_set
    assert expected_tokens_per_pass(0.0, 4) == 1.0 and expected_tokens_per_pass(1.0, 4) == 5.0
    assert expected_tokens_per_pass(0.5, 2) == pytest.approx(1.75)
    with pytest.raises(ConfigError, match="blocks"):
        first_layers(q8, 2)
    with pytest.raises(ConfigError, match="batch 1"):
        generate(q8, torch.ones(2, 3, dtype=torch.long), 2, assistant=q8)
    other = spikemfm.quantize(tiny_lm("gpt2"), spikemfm.QuantConfig(bits=8),
                              [torch.randint(0, VOCAB, (2, 8))])
    assert torch.equal(generate(q8, prompt(3, 5), 4, assistant=other).tokens, generate(q8, prompt(3, 5), 4).tokens)


def test_priced_passes_for_energy_per_accepted_token(llama_set):
    from spikemfm.energy import load_profile
    from spikemfm.lm.energy import Priced

    q8, _ = llama_set
    snn = spikemfm.convert(q8, spikemfm.ConvertConfig(max_spikes_per_step=None))
    profiles, chip = [load_profile("horowitz45")], load_profile("loihi2")
    ids = prompt(5, 6)
    plain_t = Priced(snn, profiles, chip)
    plain = generate(plain_t, ids, 6)
    spec_t, spec_d = Priced(snn, profiles, chip), Priced(snn, profiles, chip)  # the target as its own draft
    spec = generate(spec_t, ids, 6, assistant=spec_d, num_assistant_tokens=2)
    assert torch.equal(spec.tokens, plain.tokens) and spec.accepted == spec.drafted == [2, 1]
    p, t = plain_t.last.totals, spec_t.last.totals
    assert p["passes"] == 5 and t["passes"] == len(spec.accepted)  # decode passes after the prefill
    assert p["horowitz45_nj"] > 0 and p["system_nj"] > 0 and p["latency_ms"] > 0
    # verification passes cover several positions: fewer passes, at least the same synaptic work in total
    assert t["horowitz45_nj"] >= 0.9 * p["horowitz45_nj"] and spec_d.last.totals["passes"] > 0

"""The cascade: doctest self-tests in the sandbox, escalation by hand-made answers, τ chosen on validation,
and the CLI end to end on a tiny random-init LLaMA."""
from __future__ import annotations

import json

import pytest

from spikemfm.app.cascade_job import CascadeConfig
from spikemfm.errors import ConfigError
from spikemfm.lm.cascade import Answer, choose_tau, examples_program, outcome
from spikemfm.lm.humaneval import load_problems
from spikemfm.lm.sandbox import run_program


def test_self_test_runs_the_prompts_own_examples():
    p = load_problems(1)[0]  # has_close_elements: two doctest examples
    assert run_program(examples_program(p, p["canonical_solution"])).passed
    assert not run_program(examples_program(p, "    return True\n")).passed  # its first example expects False
    assert not run_program(examples_program(p, "    return (\n")).passed  # a syntax error fails, never raises
    plain = {**p, "prompt": "def f(x):\n    \"\"\"Returns x.\"\"\"\n"}
    assert examples_program(plain, "    return x\n") is None


def a(test: str, margin: float, passed: bool, tokens: int = 10) -> Answer:
    return Answer("t", "", tokens, margin, test, passed)


PAIRS = [(a("passed", 0.9, True), a("passed", 0.9, True, 20)),   # small right and sure
         (a("failed", 0.9, False), a("passed", 0.9, True, 20)),  # examples catch it
         (a("none", 0.1, False), a("none", 0.5, True, 20)),      # no examples, unsure: escalate at tau > 0.1
         (a("none", 0.7, False), a("none", 0.5, False, 20))]     # sure and wrong: nobody solves it


def test_outcome_by_hand():
    small, large = outcome(PAIRS, "small", 1.0, 3.0), outcome(PAIRS, "large", 1.0, 3.0)
    assert (small["passed"], small["energy_per_problem"]) == (1, 10.0)
    assert (large["passed"], large["escalated_share"], large["energy_per_problem"]) == (3, 1.0, 60.0)
    c = outcome(PAIRS, 0.2, 1.0, 3.0)  # escalates problems 2 and 3
    assert (c["passed"], c["escalated_share"], c["energy_per_problem"]) == (3, 0.5, (40 + 120) / 4)
    assert choose_tau(PAIRS, 1.0, 3.0) == 0.2  # the cheapest threshold reaching 3 passes
    with pytest.raises(ConfigError):
        outcome([], 0.1, 1.0, 1.0)
    with pytest.raises(ConfigError, match="cheaper"):
        CascadeConfig(small_bits=8, large_bits=8)


def test_cascade_cli_end_to_end(tmp_path, capsys):
    from transformers import LlamaConfig, LlamaForCausalLM

    from spikemfm.cli import main
    from spikemfm.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    folder = tmp_path / "lm"
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    out = tmp_path / "c"
    assert main(["cascade", "--model", f"hf-lm:{folder}", "--problems", "4", "--max-new-tokens", "3",
                 "--energy-tokens", "1", "--out", str(out), "--no-progress"]) == 0
    rows = json.loads((out / "cascade.json").read_text())["rows"]
    test = [r for r in rows if r["split"] == "test"]
    assert [r["policy"] for r in test][:2] == ["small", "large"] and all(r["problems"] == 2 for r in test)
    assert test[1]["energy_vs_large"] == 1.0 and test[0]["energy_per_problem"] > 0
    answers = json.loads((out / "answers.json").read_text())["rows"]
    assert len(answers) == 4 and {a["small_self_test"] for a in answers} <= {"passed", "failed", "none"}

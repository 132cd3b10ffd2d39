"""Causal LMs through the command line: convert, generate from the saved file, evaluate (HumanEval in the
sandbox, perplexity on code) — on a random-init tiny Llama with SmolLM2's real tokenizer, as ``hf-lm:<folder>``."""
from __future__ import annotations

import json

import pytest
import torch

from spikemfm.cli import main
from spikemfm.lm.humaneval import load_problems, program, truncate
from spikemfm.lm.sandbox import SandboxConfig, run_program


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    from spikemfm.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return f"hf-lm:{folder}"


@pytest.fixture(scope="module")
def converted(lm_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv")
    assert main(["convert", "--model", lm_folder, "--calib-samples", "2", "--out", str(out), "--no-progress"]) == 0
    return out


def test_convert_saves_an_exact_decoder(converted):
    s = json.loads((converted / "summary.json").read_text())
    assert s["snn_equals_qann"] is True and s["graph"] == "llama" and s["command"]
    assert (converted / "model.snn.pt").is_file()


def test_generate_from_the_saved_file(converted, capsys):
    assert main(["generate", str(converted / "model.snn.pt"), "--prompt", "def add(a, b):",
                 "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("def add(a, b):") and "exact=True" in out.err


def test_generate_speculative_equals_plain(converted, lm_folder, capsys):
    args = ["generate", str(converted / "model.snn.pt"), "--prompt", "def add(a, b):", "--max-new-tokens", "5"]
    assert main(args) == 0
    plain = capsys.readouterr()
    assert main([*args, "--draft-layers", "1", "--num-assistant-tokens", "2"]) == 0
    spec = capsys.readouterr()
    assert spec.out == plain.out and "draft acceptance" in spec.err and "exact=True" in spec.err
    assert main([*args, "--draft-bits", "4"]) == 2  # a saved SNN cannot be re-quantized: one clear error
    assert "--draft-bits" in capsys.readouterr().err
    assert main(["generate", lm_folder, "--path", "fp32", "--prompt", "x", "--draft-layers", "1"]) == 2


def test_draft_then_generate_with_the_draft(lm_folder, tmp_path, capsys):
    draft = tmp_path / "draft"
    assert main(["draft", lm_folder, "--out", str(draft), "--layers", "1", "--windows", "4", "--length", "32",
                 "--epochs", "1", "--no-progress"]) == 0
    assert "--draft-model hf-lm:" in capsys.readouterr().out and (draft / "config.json").is_file()
    args = ["generate", lm_folder, "--path", "qann", "--prompt", "def add(a, b):", "--max-new-tokens", "5"]
    assert main(args) == 0
    plain = capsys.readouterr()
    assert main([*args, "--draft-model", f"hf-lm:{draft}", "--num-assistant-tokens", "3"]) == 0
    spec = capsys.readouterr()
    assert spec.out == plain.out and "draft acceptance" in spec.err
    assert main([*args, "--draft-model", f"hf-lm:{draft}", "--draft-layers", "1"]) == 2
    assert "give one draft" in capsys.readouterr().err
    assert main(["draft", lm_folder, "--out", str(draft), "--layers", "2"]) == 2  # the teacher has 2 blocks
    assert "draft layers = 2" in capsys.readouterr().err


def test_evaluate_humaneval_all_paths(lm_folder, tmp_path, capsys):
    out = tmp_path / "he"
    assert main(["evaluate", lm_folder, "--data-set", "humaneval", "--problems", "2", "--max-new-tokens", "4",
                 "--calib-samples", "2", "--out", str(out), "--no-progress"]) == 0
    rows = {r["path"]: r for r in json.loads((out / "evaluate.json").read_text())["rows"]}
    assert set(rows) == {"fp32", "qann", "snn"} and rows["snn"]["tokens_equal_qann"] == 1.0
    assert all(r["problems"] == 2 for r in rows.values())
    attempts = json.loads((out / "attempts.json").read_text())["rows"]
    assert len(attempts) == 6 and {a["status"] for a in attempts} <= {"passed", "failed", "timeout"}


def test_evaluate_code_perplexity_snn_equals_qann(lm_folder, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("def f(x):\n    return x + 1\n" * 40)
    out = tmp_path / "ppl"
    assert main(["evaluate", lm_folder, "--data-set", f"code:{src}", "--window", "32", "--windows", "2",
                 "--paths", "qann", "snn", "--out", str(out), "--no-progress"]) == 0
    rows = {r["path"]: r for r in json.loads((out / "evaluate.json").read_text())["rows"]}
    assert rows["snn"]["equals_qann"] is True and rows["qann"]["perplexity"] > 1


@pytest.mark.parametrize("argv,fragment", [
    (["evaluate", "MODEL", "--data-set", "code:/no/such/dir", "--out", "OUT"], "no such file"),
    (["evaluate", "MODEL", "--data-set", "humaneval", "--problems", "0", "--out", "OUT"], "--problems"),
    (["evaluate", "MODEL", "--data-set", "humaneval", "--paths", "int4", "--out", "OUT"], "--paths"),
    (["convert", "--model", "MODEL", "--head-ratio", "0.5", "--out", "OUT"], "head_ratio"),
])
def test_lm_commands_refuse(argv, fragment, lm_folder, tmp_path, capsys):
    argv = [lm_folder if a == "MODEL" else str(tmp_path / "o") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_reference_solutions_pass_and_wrong_ones_fail():
    fast = SandboxConfig(timeout_s=5, memory_mib=512)
    for p in load_problems(3):
        assert run_program(program(p, p["canonical_solution"]), fast).passed, p["task_id"]
        assert not run_program(program(p, "    return None\n"), fast).passed, p["task_id"]


def test_truncate_at_stop_sequences():
    assert truncate("    return 1\ndef other():\n") == "    return 1"
    assert truncate("    return 1\n```\nprose") == "    return 1\n"
    assert truncate("    x = 1\n    return x\n") == "    x = 1\n    return x\n"


def test_energy_per_generated_token(lm_folder, converted, tmp_path):
    out = tmp_path / "en"
    assert main(["energy", lm_folder, "--profile", "loihi2", "horowitz45", "--inputs", "2", "--max-spikes", "graded",
                 "--calib-samples", "2", "--out", str(out), "--no-progress"]) == 0
    rows = json.loads((out / "energy_summary.json").read_text())["rows"]
    assert [r["profile"] for r in rows] == ["loihi2", "horowitz45"] and all(r["tokens"] == 2 for r in rows)
    assert all(r["all_settled"] and r["snn_nJ"] > 0 for r in rows)
    saved = tmp_path / "en2"  # the saved decoder file works the same way
    assert main(["energy", str(converted / "model.snn.pt"), "--profile", "loihi2", "--inputs", "1",
                 "--out", str(saved), "--no-progress"]) == 0
    assert len(json.loads((saved / "energy_tokens.json").read_text())["rows"]) == 1


def test_simulate_a_saved_decoder_on_real_code(converted, tmp_path):
    out = tmp_path / "sim"
    assert main(["simulate", str(converted / "model.snn.pt"), "--inputs", "2", "-T", "24", "--out", str(out)]) == 0
    rows = json.loads((out / "simulate.json").read_text())["rows"]
    assert rows[-1]["max_rel_error_vs_qann"] == 0  # 16 spikes per step: exact once every count is reached


def test_lava_refuses_a_decoder_tower_naming_what_lava_lacks(converted, tmp_path, capsys):
    assert main(["lava", str(converted / "model.snn.pt"), "--part", "tower", "--out", str(tmp_path / "l")]) == 2
    err = capsys.readouterr().err
    assert "export_lava" in err and ("rope unit" in err or "gate product" in err)  # RoPE / SwiGLU: no process yet
    assert not (tmp_path / "l").exists()


def test_energy_system_per_token(lm_folder, tmp_path, capsys):
    out = tmp_path / "sys"
    assert main(["energy", lm_folder, "--profile", "loihi2", "--inputs", "1", "--max-spikes", "graded",
                 "--batch", "1", "8", "--onchip-mib", "0", "--calib-samples", "2", "--out", str(out),
                 "--no-progress"]) == 0
    rows = json.loads((out / "energy_summary.json").read_text())["rows"]
    assert [r["path"] for r in rows] == ["snn", "dense", "dense", "dense", "dense"]
    assert rows[1]["dram_nj"] > rows[3]["dram_nj"] > 0  # batch 8 shares the streamed weights
    assert main(["energy", lm_folder, "--batch", "0", "--out", str(tmp_path / "bad")]) == 2

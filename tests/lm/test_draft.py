"""The distilled draft (draft (c) of speculative decoding): it starts as the teacher's first blocks with the
teacher's norm and head, training raises its agreement with the teacher's greedy token, it saves as an
``hf-lm:<folder>``, and speculative decoding with it (quantized, spiking) equals plain greedy."""
from __future__ import annotations

import pytest
import torch

import spikemfm
from spikemfm.errors import ConfigError
from spikemfm.lm import generate
from spikemfm.lm.draft import (DraftConfig, agreement, argmax_labels, continued, init_draft, save_draft,
                               train_draft)

from .conftest import VOCAB, tiny_lm


def ids(n: int, length: int, seed: int) -> torch.Tensor:
    return torch.randint(3, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


def test_draft_starts_as_the_teachers_first_blocks_and_head():
    teacher = tiny_lm("llama")
    draft = init_draft(teacher, 1)
    x = ids(2, 12, 0)
    with torch.no_grad():
        hidden = teacher(x, output_hidden_states=True).hidden_states[1]  # the output of the teacher's first block
        want = teacher.lm_head(teacher.model.norm(hidden))
        assert torch.allclose(draft(x).logits, want, atol=1e-5)
    assert len(draft.model.layers) == 1
    assert not draft.get_input_embeddings().weight.requires_grad
    assert all(p.requires_grad for p in draft.model.layers.parameters())


def test_training_raises_agreement_with_the_teacher():
    teacher = tiny_lm("llama")
    train, val = ids(8, 16, 1), ids(8, 16, 1)  # held out = the training windows: a property of the optimiser
    cfg = DraftConfig(layers=1, windows=8, length=16, batch=4, epochs=30, lr=1e-2, warmup=2, val_windows=8)
    draft, history = train_draft(teacher, train, val, cfg, log=lambda m: None)
    agree = [h["val_agreement"] for h in history if "val_agreement" in h]
    assert len(agree) == cfg.epochs + 1
    assert agree[-1] > agree[0] + 0.2
    assert agree[-1] == round(agreement(draft, val, argmax_labels(teacher, val, 4), 4), 4)
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == cfg.epochs * 2 and losses[-1] < losses[0]


def test_saved_draft_loads_as_hf_lm(tmp_path):
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({f"t{i}": i for i in range(VOCAB)},
                                                                              unk_token="t0")))
    draft = init_draft(tiny_lm("llama"), 1)
    folder = save_draft(draft, tok, tmp_path / "draft", DraftConfig(layers=1))
    loaded = spikemfm.load(f"hf-lm:{folder}")
    x = ids(1, 10, 2)
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, draft(x).logits)
    assert (folder / "draft_config.json").is_file()
    gguf = tiny_lm("llama")  # a teacher loaded from GGUF carries a quantization_config; its draft is plain float
    gguf.config.quantization_config = {"quant_method": "gguf", "gguf_file": "x.gguf"}
    cut = init_draft(gguf, 1)
    assert not hasattr(cut.config, "quantization_config")
    loaded.hf_quantizer = object()  # what transformers marks a model loaded through a GGUF config with
    loaded.config.quantization_config = gguf.config.quantization_config
    again = save_draft(loaded, tok, tmp_path / "again")  # a draft trained further (--init) saves again
    assert "quantization_config" not in (again / "config.json").read_text()


def test_speculative_with_a_distilled_draft_equals_plain_greedy():
    teacher = tiny_lm("llama")
    draft = init_draft(teacher, 1)
    calib = [ids(4, 24, i) for i in range(2)]
    q8, d8 = (spikemfm.quantize(m, spikemfm.QuantConfig(bits=8), calib) for m in (teacher, draft))
    s8, ds8 = (spikemfm.convert(q, spikemfm.ConvertConfig(max_spikes_per_step=None)) for q in (q8, d8))
    for seed in range(3):
        prompt = ids(1, 5, 10 + seed)
        plain = generate(q8, prompt, 10)
        assert torch.equal(generate(q8, prompt, 10, assistant=d8, num_assistant_tokens=3).tokens, plain.tokens)
    spec = generate(s8, prompt, 10, assistant=ds8, num_assistant_tokens=3)
    assert spec.exact and torch.equal(spec.tokens, plain.tokens)


def test_generated_windows_follow_the_teachers_greedy_path_and_training_continues():
    teacher = tiny_lm("llama")
    prefixes = ids(3, 6, 4)
    windows = continued(teacher, prefixes, 8, 2, log=lambda m: None)
    assert windows.shape == (3, 14) and torch.equal(windows[:, :6], prefixes)
    labels = argmax_labels(teacher, windows, 3)  # teacher forcing on its own continuation: the same tokens
    assert torch.equal(labels[:, 5:-1], windows[:, 6:])
    cfg = DraftConfig(layers=1, windows=0, generated=3, new_tokens=8, length=14, batch=3, epochs=1, warmup=0)
    first, history = train_draft(teacher, windows, windows, cfg, log=lambda m: None)
    again, resumed = train_draft(teacher, windows, windows, cfg, log=lambda m: None, draft=first)
    assert again is first and resumed[0]["val_agreement"] == history[-1]["val_agreement"]  # it went on from there
    assert not again.get_input_embeddings().weight.requires_grad
    with pytest.raises(ConfigError, match="share the teacher's tokenizer"):
        train_draft(teacher, windows, windows, cfg, log=lambda m: None, draft=_other_vocab())


def _other_vocab():
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB + 3, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2))


def test_refusals():
    teacher = tiny_lm("llama")
    with pytest.raises(ConfigError, match="1 … 1"):
        init_draft(teacher, 2)
    with pytest.raises(ConfigError, match="model.layers"):
        init_draft(tiny_lm("gpt2"), 1)
    with pytest.raises(ConfigError, match="DraftConfig.layers"):
        DraftConfig(layers=0)
    with pytest.raises(ConfigError, match="DraftConfig.lr"):
        DraftConfig(lr=0)
    with pytest.raises(ConfigError, match="at least one window"):
        DraftConfig(windows=0, generated=0)
    with pytest.raises(ConfigError, match="new_tokens"):
        DraftConfig(generated=4, new_tokens=256, length=256)

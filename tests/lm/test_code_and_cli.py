"""Code data splits, perplexity, and the ``generate`` command's refusals."""
from __future__ import annotations

import math

import pytest
import torch

from spikemfm.cli import main
from spikemfm.data.code import SPLITS, code_windows, source_files, stdlib_files
from spikemfm.errors import DataError
from spikemfm.lm.perplexity import nll, perplexity

from .conftest import VOCAB, tiny_lm


def test_stdlib_splits_are_disjoint_and_real():
    parts = {s: set(stdlib_files(s)) for s in SPLITS}
    assert all(len(p) >= 10 for p in parts.values())
    assert not (parts["test"] & parts["validation"]) and not (parts["test"] & parts["calibration"])
    assert not (parts["validation"] & parts["calibration"])


class _ByteTokens:
    """A tokenizer stand-in: one id per byte (mod the tiny vocabulary)."""

    def __call__(self, text):
        return type("Enc", (), {"input_ids": [b % VOCAB for b in text.encode()]})()


def test_code_windows_cut_files(tmp_path):
    f = tmp_path / "a.py"
    f.write_text("x = 1\n" * 20)  # 120 bytes: three windows of 40
    w = code_windows(source_files(tmp_path), _ByteTokens(), 40)
    assert w.shape == (3, 40)
    with pytest.raises(DataError, match="fewer than"):
        code_windows([f], _ByteTokens(), 500)
    with pytest.raises(DataError, match="no such file"):
        source_files(tmp_path / "missing")


def test_perplexity_is_exp_mean_nll():
    model = tiny_lm("gpt2")
    ids = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(ids).logits
    total, n = nll(logits, ids)
    assert n == 22
    assert perplexity(model, ids, progress=False) == pytest.approx(math.exp(total / n), rel=1e-9)


@pytest.mark.parametrize("argv, fragment", [
    (["generate", "smollm2-135m", "--prompt", ""], "--prompt is empty"),
    (["generate", "smollm2-135m", "--prompt", "x", "--max-new-tokens", "0"], "max-new-tokens"),
])
def test_generate_cli_refuses(argv, fragment, capsys):
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err


def test_snn_perplexity_equals_qann(lm_set):
    _, qann, snn, calib = lm_set
    assert perplexity(snn, calib[0], progress=False) == perplexity(qann, calib[0], progress=False)

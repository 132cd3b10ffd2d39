"""`spikemfm evaluate`: the rows a run writes are the SNN's own figures on real data, the same numbers with two
processes under torchrun (gloo) as with one, and an interrupted run resumes where it stopped."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spikemfm.app import evaluation
from spikemfm.cli import main

VIT = ["img_size=28", "patch_size=7", "depth=2", "embed_dim=32", "num_heads=2", "num_classes=10"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A random-init timm ViT classifier (10 classes, graded spikes: exact from T=1) and MiniLM, as saved files."""
    root = tmp_path_factory.mktemp("eval_models")
    assert main(["convert", "--model", "timm:vit_small_patch16_224", *[a for v in VIT for a in ("--model-arg", v)],
                 "--bits", "6", "--max-spikes", "graded", "-T", "2", "--calib-samples", "32", "--eval-samples", "2",
                 "--out", str(root / "vit"), "--no-progress"]) == 0
    assert main(["convert", "--model", "minilm", "--bits", "8", "--max-spikes", "4", "-T", "2", "--calib-samples",
                 "16", "--eval-samples", "2", "--out", str(root / "minilm"), "--no-progress"]) == 0
    return {"vit": root / "vit" / "model.snn.pt", "minilm": root / "minilm" / "model.snn.pt"}


def _args(model, out, *extra):
    return ["evaluate", str(model), "--images", "24", "--batch-size", "6", "-T", "1", "3", "--profile", "loihi2",
            "--out", str(out), "--no-progress", *extra]


def _rows(out):
    return json.loads((Path(out) / "evaluate.json").read_text())["rows"]


def test_rows_are_the_snns_own_accuracy_and_exactness(saved, tmp_path, capsys):
    from spikemfm.app.data import fit_images
    from spikemfm.data import load_fashion_mnist
    from spikemfm.app.jobs import load_saved, torch_qann
    from spikemfm.snn import simulate

    assert main(_args(saved["vit"], tmp_path / "a")) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line[:1] in "┃│┏┡└"]
    assert table and max(len(line) for line in table) <= 80
    rows = _rows(tmp_path / "a")
    snn, _, _, spec = load_saved(saved["vit"])
    x, y = load_fashion_mnist("test").subset(24, seed=0).tensors(normalize=False)
    x, _ = fit_images(x, spec)
    sim, ref = simulate(snn, x, 3), torch_qann(snn, x)
    for row in rows:
        assert row["accuracy"] == float((sim.outputs[row["T"] - 1].argmax(-1) == y).double().mean())
        assert row["exact_share"] == 1.0 and row["max_rel_error"] == 0.0  # graded spikes: exact from T=1
        assert row["qann_accuracy"] == float((ref.argmax(-1) == y).double().mean())
        assert row["spikes_per_input"] == sum(float(v.spikes[:row["T"]].sum()) for v in sim.neuron_stats.values()) / 24
    assert isinstance(rows[0]["loihi2:snn_nJ"], float) and rows[0]["loihi2:complete"] == "yes"
    layers = json.loads((tmp_path / "a" / "layers.json").read_text())["rows"]
    assert sum(r["spikes_per_input"] for r in layers) == pytest.approx(rows[-1]["spikes_per_input"])
    assert not (tmp_path / "a" / ".partial").exists()  # complete: no partial results left


def test_text_towers_are_scored_by_cosine(saved, tmp_path):
    assert main(["evaluate", str(saved["minilm"]), "--data-set", "sentences", "--inputs", "8", "--batch-size", "4",
                 "-T", "2", "8", "--profile", "horowitz45", "horowitz45_event", "--out", str(tmp_path / "t"),
                 "--no-progress"]) == 0
    rows = _rows(tmp_path / "t")
    assert rows[0]["accuracy"] is None and rows[0]["inputs"] == 8
    assert 0 < rows[0]["cosine_vs_qann"] < rows[1]["cosine_vs_qann"] <= 1 + 1e-12  # 4 spikes a step: converging
    for row in rows:  # updates counted over both batches: the event-driven chip skips idle neurons
        assert 0 < row["horowitz45_event:snn_nJ"] < row["horowitz45:snn_nJ"]
        assert row["horowitz45_event:complete"] == "yes"


def test_two_processes_write_the_rows_of_one(saved, tmp_path):
    assert main(_args(saved["vit"], tmp_path / "one")) == 0
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    done = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "spikemfm.cli",
                           *_args(saved["vit"], tmp_path / "two")], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _rows(tmp_path / "two") == _rows(tmp_path / "one")
    assert json.loads((tmp_path / "two" / "evaluate.json").read_text())["config"]["processes"] == 2


def test_an_interrupted_run_resumes_where_it_stopped(saved, tmp_path, monkeypatch):
    assert main(_args(saved["vit"], tmp_path / "fresh")) == 0
    real, calls = evaluation.batch_record, []

    def failing(*a, **k):
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after two of four batches
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(evaluation, "batch_record", failing)
    with pytest.raises(KeyboardInterrupt):
        evaluation.run_evaluate(str(saved["vit"]), evaluation.EvalConfig(inputs=24, timesteps=(1, 3), batch_size=6,
                                                                         profiles=("loihi2",)), tmp_path / "r",
                                progress=False)
    partial = list((tmp_path / "r" / ".partial").rglob("batch-*.pt"))
    assert len(partial) == 2 and not (tmp_path / "r" / "evaluate.json").exists()

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)
    calls.clear()
    monkeypatch.setattr(evaluation, "batch_record", counting)
    assert main(_args(saved["vit"], tmp_path / "r")) == 0
    assert len(calls) == 2  # only the two missing batches were simulated
    assert _rows(tmp_path / "r") == _rows(tmp_path / "fresh")


def test_bad_evaluations_fail_with_one_line(saved, tmp_path, capsys):
    cases = [(["--data-set", "sentences"], "image tower"), (["-T", "0"], "timesteps"),
             (["--profile", "nonsense"], "nonsense"), (["--batch-size", "0"], "batch_size")]
    for extra, fragment in cases:
        assert main(_args(saved["vit"], tmp_path / "bad", *extra)) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and fragment in err, err
    assert main(["evaluate", "--no-progress"]) == 2 and "no model" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_video_frames_evaluate_without_labels(saved, tmp_path):
    assert main(["evaluate", str(saved["vit"]), "--data-set", "video:vtest", "--images", "4", "--batch-size", "2",
                 "-T", "1", "--profile", "loihi2", "--out", str(tmp_path / "v"), "--no-progress"]) == 0
    rows = _rows(tmp_path / "v")
    assert rows[0]["accuracy"] is None and rows[0]["exact_share"] == 1.0
    assert "frames of vtest" in json.loads((tmp_path / "v" / "evaluate.json").read_text())["config"]["data_note"]


def test_config_rejects_bad_fields():
    from spikemfm.errors import ConfigError

    bad = [dict(inputs=0), dict(timesteps=()), dict(timesteps=(2, True)), dict(data=""), dict(device="gpu7"),
           dict(max_memory_mib=0.0)] + ([] if torch.cuda.is_available() else [dict(device="cuda")])
    for kwargs in bad:
        with pytest.raises(ConfigError):
            evaluation.EvalConfig(**kwargs)
    assert evaluation.EvalConfig(timesteps=(4, 16, 8)).t_max == 16
    assert torch.equal(evaluation._combine({"max_rel": torch.tensor([1.0, 5.0])}, {"max_rel": torch.tensor([2.0, 3.0])})
                       ["max_rel"], torch.tensor([2.0, 5.0]))

"""A converted model and its summary always come from one run: concurrent writers of one --out, a writer killed
between two renames, the SHA-256 link between a summary and its model, and one evaluation per --out at a time.
No timing assertions: every wait below is for a file a hook writes or a writer's exit; pytest-timeout bounds the
test so that a stuck writer fails it instead of hanging CI."""
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from spikemfm.cli import main
from spikemfm.core.io import JOURNAL, file_sha256, folder_lock, output_set
from spikemfm.errors import OutputError, SetMismatchWarning



def _writer(out: Path, bits: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "spikemfm.cli", "convert", "--model", "tiny-clip-fmnist", "--calib-samples", "16",
            "--eval-samples", "2", "-T", "2", "--bits", str(bits), "--out", str(out), "--no-progress"]
    return subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(folder: Path, prefix: str, procs: list[subprocess.Popen]) -> None:
    """Until a hook writes a file named ``prefix``…; a writer that exits first fails the test."""
    while not any(p.name.startswith(prefix) for p in folder.iterdir()):
        for p in procs:
            assert p.poll() is None, f"a writer exited early: {p.stderr.read().decode()[-2000:]}"
        time.sleep(0.05)


def _set_of(out: Path) -> tuple[int, int, bool]:
    """(bits the model was quantized with, bits the summary states, whether the summary names the model's SHA-256)."""
    from spikemfm.snn.serialize import load_converted

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SetMismatchWarning)
        snn, _ = load_converted(out / "model.snn.pt")
    summary = json.loads((out / "summary.json").read_text())
    return snn.quant_config.bits, summary["config"]["bits"], summary["model_sha256"] == file_sha256(out / "model.snn.pt")


@pytest.mark.timeout(1800)
def test_two_writers_and_a_killed_writer_never_leave_a_mixed_set(tmp_path):
    writers: list[subprocess.Popen] = []
    try:
        _two_writers_and_a_killed_writer(tmp_path, writers)
    finally:  # a failed assertion must not leave a writer paused in its hook
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait()


def _two_writers_and_a_killed_writer(tmp_path, writers: list[subprocess.Popen]) -> None:
    out, pause, wait = tmp_path / "cc", tmp_path / "pause", tmp_path / "wait"
    pause.mkdir(), wait.mkdir()
    # 1. writer A stops between its two renames (model moved, summary not); writer B finds the folder locked
    a = _writer(out, 6, {"SPIKEMFM_TEST_COMMIT_PAUSE": str(pause)})
    writers.append(a)
    _wait_for(pause, "paused.", [a])
    b = _writer(out, 4, {"SPIKEMFM_TEST_LOCK_WAIT": str(wait)})
    writers.append(b)
    _wait_for(wait, "waiting.", [a, b])  # the interleaving that mixed the sets before: B commits during A's commit
    (pause / "go").touch()
    assert a.wait() == 0 and b.wait() == 0
    assert _set_of(out) == (4, 4, True)  # B's whole set, committed after A's
    # 2. writer C is killed between its renames: its model lies beside B's summary (a loader warns) until the next
    # writer of the folder completes C's set from its journal and then commits its own
    (pause / "go").unlink()
    c = _writer(out, 6, {"SPIKEMFM_TEST_COMMIT_PAUSE": str(pause)})
    writers.append(c)
    _wait_for(pause, f"paused.{c.pid}", [c])
    c.send_signal(signal.SIGKILL)
    c.wait()
    assert (out / JOURNAL).exists() and _set_of(out) == (6, 4, False)
    d = _writer(out, 8)
    writers.append(d)
    assert d.wait() == 0, d.stderr.read().decode()[-2000:]
    assert _set_of(out) == (8, 8, True) and not (out / JOURNAL).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".spikemfm-")]  # no stage or commit left over


def test_a_journalled_set_is_completed_by_the_next_writer(tmp_path):
    out = tmp_path / "o"
    with output_set(out) as stage:
        (stage / "a.txt").write_text("old a")
        (stage / "b.txt").write_text("old b")
    # a commit that died after moving a.txt: its stage still holds b.txt, the journal names the stage
    moving = tmp_path / ".spikemfm-committing.999999-x"
    moving.mkdir()
    (out / "a.txt").write_text("new a")
    (moving / "b.txt").write_text("new b")
    (out / JOURNAL).write_text(json.dumps({"stage": str(moving), "pid": 999999}))
    with output_set(out) as stage:
        (stage / "c.txt").write_text("c")
    assert [(out / n).read_text() for n in ("a.txt", "b.txt", "c.txt")] == ["new a", "new b", "c"]
    assert not moving.exists() and not (out / JOURNAL).exists()


@pytest.fixture
def saved_model(tmp_path):
    import spikemfm
    from spikemfm.convert import QuantConfig
    from spikemfm.snn import convert
    from spikemfm.snn.serialize import save_converted

    torch.manual_seed(0)
    vit = spikemfm.load("timm:vit_tiny_patch16_224", img_size=8, patch_size=4, depth=1, num_heads=2, embed_dim=16,
                        num_classes=3)
    path = save_converted(convert(spikemfm.quantize(vit, QuantConfig(bits=4), [torch.randn(8, 3, 8, 8)])),
                          tmp_path / "model.snn.pt")
    return path


def test_the_summary_binds_its_model_by_sha256_both_ways(saved_model, capsys):
    from spikemfm.snn.serialize import load_converted

    summary = saved_model.parent / "summary.json"
    summary.write_text(json.dumps({"file": str(saved_model), "model_sha256": file_sha256(saved_model)}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a match is silent
        load_converted(saved_model)
    summary.write_text(json.dumps({"file": str(saved_model), "model_sha256": "0" * 64}))
    with pytest.warns(SetMismatchWarning, match="come from different runs") as seen:
        load_converted(saved_model)
    assert len(seen) == 1 and "\n" not in str(seen[0].message)
    assert main(["lava", str(saved_model), "--part", "mlp", "--precision", "floating_pt", "-T", "1", "--inputs", "1",
                 "--out", str(saved_model.parent / "lv"), "--timeout", "1e-9"]) in (1, 2)  # stops in the worker
    err = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
    assert len(err) == 1 and err[0].startswith("spikemfm lava: warning:") and "different runs" in err[0]


def test_a_second_evaluation_of_one_out_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "ev"
    with folder_lock(out / ".partial", "evaluating"):
        code = main(["evaluate", "--model", "tiny-clip-fmnist", "--images", "4", "-T", "2", "--out", str(out),
                     "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pid {os.getpid()}" in err[0] and "choose another --out" in err[0]
    assert not (out / "evaluate.json").exists()


def test_the_lock_refuses_at_once_when_told_not_to_wait(tmp_path):
    with folder_lock(tmp_path, "writing"):
        child = subprocess.run([sys.executable, "-c", "from spikemfm.core.io import folder_lock\n"
                                f"with folder_lock({str(tmp_path)!r}, 'writing', wait_s=0): pass"],
                               capture_output=True, text=True)
    assert child.returncode != 0 and f"pid {os.getpid()}" in child.stderr and OutputError.__name__ in child.stderr

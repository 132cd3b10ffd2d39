"""Lava (floating / fixed point) vs the PyTorch SNN on real data, spike for spike.

Every Lava run goes through ``run_isolated``: a worker in its own process group with a deadline, so a
hanging Lava runtime fails the test instead of stalling CI. Deselect with ``-m 'not lava'``.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

from spikemfm.neuromorphic.isolate import WorkerError, WorkerTimeout, run_isolated
from spikemfm.app.jobs import agreement_job
from spikemfm.app.streaming import stream_agreement_job

pytestmark = pytest.mark.lava

PRECISIONS = ["floating_pt", "fixed_pt"]


def _assert_exact(rows, expected_layers):
    assert {(r["part"], r["precision"]) for r in rows} == {(p, q) for p in expected_layers for q in PRECISIONS}
    for r in rows:
        what = f"{r['part']} block {r['block']} {r['precision']}"
        assert r["timesteps"] >= 32
        assert r["neuron_layers"] == expected_layers[r["part"]], what
        assert r["spikes_compared"] > 10_000, what  # a silent network would agree trivially
        assert r["spike_mismatches"] == 0, what
        if r["precision"] == "floating_pt":
            assert r["max_output_diff"] <= 1e-6, what
        else:
            assert r["max_output_diff"] == 0.0, what  # bit-exact integer agreement
            # the integer variant stays near the float SNN (relative L2 of the output); not exact: one Q.F
            # rounding that moves an input across a level boundary changes a count by 1, and that spreads
            assert r["fixed_vs_float"] < 0.1, what


def test_tiny_clip_mlp_attention_block_agree_with_pytorch():
    rows = run_isolated(agreement_job, dict(model="tiny-clip-image", parts=[("mlp", 0), ("attention", 1), ("block", 3)],
                                            precisions=PRECISIONS, timesteps=32, n_inputs=2), timeout_s=600)
    _assert_exact(rows, {"mlp": 3, "attention": 6, "block": 9})


def test_tiny_clip_whole_image_tower_agrees_with_pytorch():
    rows = run_isolated(agreement_job, dict(model="tiny-clip-image", parts=[("tower", 0)], precisions=PRECISIONS,
                                            timesteps=32, n_inputs=1), timeout_s=600)
    _assert_exact(rows, {"tower": 4 * 9 + 1})


def test_a_stream_of_real_video_frames_agrees_with_pytorch_state_kept_across_frames():
    # 4 consecutive vtest frames, 8 steps each: the Lava processes keep every count and current from frame to
    # frame, like spikemfm.simulate_stream; spike for spike against the PyTorch stream, floating and fixed point
    rows = run_isolated(stream_agreement_job, dict(video="vtest", frames=4, steps_per_frame=8,
                                                   parts=[("block", 1), ("tower", 0)], precisions=PRECISIONS),
                        timeout_s=600)
    _assert_exact(rows, {"block": 9, "tower": 4 * 9 + 1})


def test_minilm_post_ln_block_with_padding_agrees_with_pytorch():
    rows = run_isolated(agreement_job, dict(model="minilm", parts=[("block", 2)], precisions=PRECISIONS,
                                            timesteps=32, n_inputs=2, frac_bits=14), timeout_s=600)
    _assert_exact(rows, {"block": 9})


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state  # a killed orphan may linger as a zombie of PID 1


def test_worker_deadline_kills_the_process_group(tmp_path):
    """The worker's children die with it (no wall-clock bound: the machine may be loaded)."""
    pidfile = tmp_path / "pid"
    with pytest.raises(WorkerTimeout, match="no result within"):
        run_isolated(subprocess.run, dict(args=["sh", "-c", f"echo $$ > {pidfile}; exec sleep 300"]), timeout_s=5)
    if pidfile.exists():  # the worker got as far as starting its child before the deadline
        assert not _alive(int(pidfile.read_text()))


def test_worker_errors_carry_the_traceback():
    with pytest.raises(WorkerError, match="JSONDecodeError"):
        run_isolated(json.loads, dict(s="{"), timeout_s=60)


def test_distilled_deit_tower_agrees_through_its_two_token_readout(tmp_path):
    """A user's model through the CLI (timm DeiT distilled: class + distillation tokens, both heads averaged as
    one Linear on the two tokens side by side), then the whole tower in Lava, spike for spike."""
    from spikemfm.cli import main

    args = ["img_size=16", "patch_size=8", "depth=1", "embed_dim=16", "num_heads=2", "num_classes=3"]
    argv = ["convert", "--model", "timm:deit_tiny_distilled_patch16_224", "--bits", "6", "--max-spikes", "4",
            "--calib-samples", "32", "--eval-samples", "2", "-T", "4", "--out", str(tmp_path), "--no-progress"]
    for a in args:
        argv += ["--model-arg", a]
    assert main(argv) == 0
    rows = run_isolated(agreement_job, dict(model=str(tmp_path / "model.snn.pt"), parts=[("tower", 0)],
                                            precisions=PRECISIONS, timesteps=32, n_inputs=2), timeout_s=900)
    _assert_exact(rows, {"tower": 10})


def test_a_network_without_probe_dir_removes_its_output_folder(tmp_path):
    """Issue 15: export_lava(probe_dir=None) left /tmp/spikemfm-lava-* behind. Run in a subprocess with its own
    TMPDIR (and a hang guard), which must be empty afterwards."""
    import subprocess
    import sys

    script = (
        "import torch, spikemfm\n"
        "from spikemfm.convert import ConvertConfig, QuantConfig, quantize\nfrom spikemfm.snn import convert\n"
        "from spikemfm.neuromorphic import Part, export_lava\n"
        "torch.manual_seed(0)\n"
        "vit = spikemfm.load('timm:vit_tiny_patch16_224', img_size=8, patch_size=4, depth=1, num_heads=2, "
        "embed_dim=16, num_classes=3)\n"
        "snn = convert(quantize(vit, QuantConfig(bits=6), [torch.randn(8, 3, 8, 8)]), ConvertConfig(4))\n"
        "net = export_lava(snn, torch.randn(1, 3, 8, 8), Part('mlp', 0), 3)\n"
        "run = net.run()\n"
        "assert run.trace.outputs.shape[0] == 3 and not net.output_path.parent.exists()\n")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "TMPDIR": str(tmp)}, timeout=600,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("spikemfm-lava-")]

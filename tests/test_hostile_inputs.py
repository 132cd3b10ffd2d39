"""Issue 15: bad data values, crafted model files and interrupted workers, at the library level."""
import gzip
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import torch

import spikemfm
from spikemfm.convert import ConvertConfig, MixedPrecisionConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.errors import ConfigError, DataError, ModelLoadError
from spikemfm.snn.serialize import save_converted


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    vit = spikemfm.load("timm:vit_tiny_patch16_224", img_size=8, patch_size=4, depth=1, num_heads=2, embed_dim=16,
                        num_classes=3)
    qann = quantize(vit, QuantConfig(bits=6), [torch.randn(8, 3, 8, 8)])
    return vit, qann, convert(qann, ConvertConfig(max_spikes_per_step=None))


@pytest.mark.parametrize("make, fragment", [
    (lambda: torch.full((2, 3, 8, 8), float("nan")), "NaN or infinite"),
    (lambda: torch.randn(2, 3, 8, 8).index_put_((torch.tensor([0]),), torch.tensor(float("inf"))), "NaN or infinite"),
    (lambda: torch.randn(2, 3, 9, 9), "multiple of the patch size 4"),
    (lambda: torch.randn(2, 1, 8, 8), "3 channels"),
    (lambda: torch.randn(0, 3, 8, 8), "empty batch"),
    (lambda: torch.zeros(2, 3, 8, 8, dtype=torch.int64), "float"),
])
def test_bad_images_are_refused_by_simulation_and_qann_alike(small, make, fragment):
    _, qann, snn = small
    x = make()
    for run in (lambda: spikemfm.simulate(snn, x, 2), lambda: spikemfm.simulate(snn, x, 2, runtime="time"),
                lambda: qann(x)):
        with pytest.raises(ValueError, match=fragment):
            run()


def test_calibration_on_a_nan_batch_is_refused_clearly(small):
    vit, _, _ = small
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize(vit, QuantConfig(bits=6), [torch.full((4, 3, 8, 8), float("nan"))])


@pytest.mark.parametrize("timesteps", [True, 0, 2.0, "4"])
def test_bad_step_counts_are_config_errors(small, timesteps):
    with pytest.raises(ConfigError, match="timesteps"):
        spikemfm.simulate(small[2], torch.randn(1, 3, 8, 8), timesteps)


def test_bad_token_ids_are_refused(minilm):
    from spikemfm.convert.qann import as_graph
    from spikemfm.ir import as_inputs

    graph = as_graph(minilm)
    for ids, fragment in ((torch.tensor([[1, 5, -3]]), "must lie in"), (torch.tensor([[1, 10 ** 6]]), "must lie in"),
                          (torch.zeros(0, 4, dtype=torch.long), "non-empty"), (torch.ones(2, 3), "integer"),
                          (torch.ones(1, 600, dtype=torch.long), "position table")):
        with pytest.raises(ValueError, match=fragment):
            as_inputs(graph, ids)


@pytest.mark.parametrize("cfg", [
    dict(budget=float("nan")), dict(budget=float("inf")), dict(budget="5"), dict(budget=True),
])
def test_mixed_precision_budget_must_be_a_finite_number(cfg):
    with pytest.raises(ConfigError, match="budget"):
        MixedPrecisionConfig(**cfg)


@pytest.mark.parametrize("cls, kwargs, fragment", [
    ("QuantConfig", dict(bits=8.0), "bits=8.0"),
    ("QuantConfig", dict(percentile=float("nan")), "percentile=nan"),
    ("PruneConfig", dict(head_ratio=float("nan")), "head_ratio=nan"),
    ("ConvertConfig", dict(max_spikes_per_step=True), "max_spikes_per_step=True"),
])
def test_configs_check_types_before_anything_runs(cls, kwargs, fragment):
    import importlib

    c = importlib.import_module("spikemfm.convert")
    with pytest.raises(ConfigError, match=fragment):
        getattr(c, cls)(**kwargs)


# --- IDX files ------------------------------------------------------------------------------------------------


def _idx(dtype_code: int, array: np.ndarray, big: str) -> bytes:
    head = bytes([0, 0, dtype_code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return head + array.astype(big).tobytes()


def _fmnist_dir(tmp_path, images: bytes, labels: bytes):
    for name, data in (("t10k-images-idx3-ubyte.gz", images), ("t10k-labels-idx1-ubyte.gz", labels)):
        (tmp_path / name).write_bytes(gzip.compress(data))
    return tmp_path


GOOD_IMAGES = _idx(0x08, np.zeros((10000, 28, 28), np.uint8), "u1")


@pytest.mark.parametrize("images, labels, fragment", [
    (_idx(0x0D, np.full((10000, 28, 28), np.nan, np.float32), ">f4"), _idx(0x08, np.zeros(10000, np.uint8), "u1"),
     "NaN or infinite pixel"),
    (GOOD_IMAGES, _idx(0x0D, np.r_[np.nan, np.zeros(9999)].astype(np.float32), ">f4"), "label nan"),
    (GOOD_IMAGES, _idx(0x0D, np.r_[3.7, np.zeros(9999)].astype(np.float32), ">f4"), "label 3.7"),
    (GOOD_IMAGES, _idx(0x09, np.r_[-1, np.zeros(9999)].astype(np.int8), "i1"), "label -1"),
    (GOOD_IMAGES, _idx(0x08, np.r_[10, np.zeros(9999)].astype(np.uint8), "u1"), "label 10"),
])
def test_bad_idx_values_are_refused(tmp_path, images, labels, fragment):
    from spikemfm.data import load_fashion_mnist

    root = _fmnist_dir(tmp_path, images, labels)
    with pytest.raises(DataError, match=fragment):
        load_fashion_mnist("test", root=root)


@pytest.mark.parametrize("header, fragment", [
    (bytes([0, 0, 0x08, 255]) + b"\x00" * 1020, "255 dimensions"),
    (bytes([0, 0, 0x08, 3]) + (2 ** 32 - 1).to_bytes(4, "big") * 3, "bytes, over the"),
    (bytes([0, 0, 0x08, 3]) + (5).to_bytes(4, "big"), "truncated IDX header"),
])
def test_bad_idx_headers_name_the_file(tmp_path, header, fragment):
    from spikemfm.data.idx import read_idx

    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(header)
    with pytest.raises(DataError, match=fragment) as exc:
        read_idx(path)
    assert str(path) in str(exc.value)


def test_a_gzip_bomb_is_read_no_further_than_its_header_says(tmp_path):
    from spikemfm.data.idx import read_idx

    path = tmp_path / "bomb-idx1-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(bytes([0, 0, 0x08, 1]) + (16).to_bytes(4, "big"))
        block = b"\x00" * (1 << 20)
        for _ in range(256):  # 256 MiB of zeros behind a header announcing 16 bytes
            fh.write(block)
    assert path.stat().st_size < 1 << 20
    reads = []
    real_read = gzip.GzipFile.read

    def counting(self, size=-1):
        reads.append(size)
        return real_read(self, size)
    gzip.GzipFile.read = counting
    try:
        with pytest.raises(DataError, match="more than 17 data bytes"):
            read_idx(path)
    finally:
        gzip.GzipFile.read = real_read
    assert all(0 <= r <= 17 for r in reads)  # never an unbounded read


# --- crafted model files ---------------------------------------------------------------------------------------


def _resigned(tmp_path, snn, edit):
    from spikemfm.snn.serialize import digest

    path = save_converted(snn, tmp_path / "m.snn.pt", {"job": {"model": "timm:vit_tiny_patch16_224"}})
    payload = torch.load(path, weights_only=False)
    edit(payload)
    payload["sha256"] = digest(payload)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("edit, fragment", [
    (lambda p: p.update(meta="a string"), "field 'meta' is a str"),
    (lambda p: p.pop("qparams"), "field 'qparams' is a NoneType"),
    (lambda p: p["meta"].update(job={"model": 5}), "ConvertJob.model=5"),
    (lambda p: p["meta"].update(job="x"), "meta.job is a str"),
    (lambda p: p["meta"].update(job={"model": "timm:x", "calib_samples": 1.5}), "calib_samples=1.5"),
    (lambda p: p["meta"].update(input={"size": 8}), "invalid metadata"),
])
def test_crafted_metadata_is_one_clear_error(tmp_path, small, edit, fragment):
    from spikemfm.app.jobs import load_saved

    path = _resigned(tmp_path, small[2], edit)
    with pytest.raises(ModelLoadError, match=fragment) as exc:
        load_saved(path)
    assert str(path) in str(exc.value)


def test_an_open_clip_text_tower_tokenizer_never_fetches(tmp_path, monkeypatch):
    """A saved open_clip text tower whose tokenizer lives on the hub: loading it must not ask the network."""
    import huggingface_hub.constants as constants

    from spikemfm.app.jobs import ConvertJob, saved_tokenizer

    seen = []
    import open_clip

    def spy(name, **kwargs):
        seen.append(constants.HF_HUB_OFFLINE)
        raise OSError("not in the local cache")
    monkeypatch.setattr(open_clip, "get_tokenizer", spy)
    with pytest.raises(ModelLoadError, match="not in the local cache"):
        saved_tokenizer(ConvertJob(model="open_clip:ViT-B-16-SigLIP", tower="text"))
    assert seen == [True] and constants.HF_HUB_OFFLINE is False  # offline inside, restored after


def test_an_uncached_hub_name_fails_at_once_when_the_hub_is_unreachable(monkeypatch):
    import spikemfm.models.offline as offline

    monkeypatch.setattr(offline, "hub_reachable", lambda timeout_s=3.0: False)
    with pytest.raises(ModelLoadError, match="not in the local cache and the hub cannot be reached"):
        spikemfm.load("hf:someuser/not-cached-anywhere")


# --- the isolated worker: deadlines, signals, temp files ------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_deadline_kill_leaves_no_worker_temp_files(tmp_path):
    from spikemfm.neuromorphic.isolate import WorkerTimeout, run_isolated

    info = tmp_path / "tmpdir"
    before = set(os.listdir(tempfile.gettempdir()))
    with pytest.raises(WorkerTimeout):
        run_isolated(subprocess.run, dict(args=["sh", "-c", f'echo "$TMPDIR" > {info}; touch "$TMPDIR/probe"; '
                                                "exec sleep 300"]), timeout_s=3)
    if info.exists():  # the worker got that far before the deadline
        assert not os.path.exists(info.read_text().strip())
    assert not {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("spikemfm-worker-")}


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_the_cli_kills_the_worker_and_its_children(tmp_path, sig, code):
    pidfile = tmp_path / "pid"
    script = (
        "import signal, subprocess, sys\n"
        "from spikemfm.cli.main import Terminated, terminate\n"
        "from spikemfm.neuromorphic.isolate import run_isolated\n"
        "signal.signal(signal.SIGTERM, terminate)\n"
        # a shell without job control starts background jobs with SIGINT ignored, and Python then installs no
        # handler for it: restore Ctrl-C's default so the test also holds under `nohup … &` (as CI may run it)
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "try:\n"
        f"    run_isolated(subprocess.run, dict(args=['sh', '-c', 'echo $$ > {pidfile}; exec sleep 300']), 600)\n"
        "except Terminated:\n    sys.exit(143)\n"
        "except KeyboardInterrupt:\n    sys.exit(130)\n")
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(3000):  # the worker's grandchild is running (a hang guard, not a timing assertion)
            if pidfile.exists() and pidfile.read_text().strip():
                break
            time.sleep(0.1)
        assert pidfile.exists(), "the worker never started"
        proc.send_signal(sig)
        assert proc.wait(timeout=300) == code
    finally:
        proc.kill()
    grandchild = int(pidfile.read_text())
    for _ in range(100):  # SIGKILL is delivered asynchronously
        if not _alive(grandchild):
            break
        time.sleep(0.1)
    assert not _alive(grandchild)

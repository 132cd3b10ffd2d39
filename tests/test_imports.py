"""Imports in any order, in a fresh interpreter of the project's environment."""
import subprocess
import sys


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_timm_and_open_clip_import_before_spikemfm():
    r = _fresh("import timm, open_clip; import spikemfm; import sys; "
               "assert not any(m == 'lava' or m.startswith('lava.') for m in sys.modules), 'lava imported'; "
               "print(timm.__version__)")
    assert r.returncode == 0, r.stderr[-2000:]


def test_transformers_and_torchvision_import_first():
    r = _fresh("import torchvision, transformers; import spikemfm")
    assert r.returncode == 0, r.stderr[-2000:]


def test_import_spikemfm_loads_no_lava_and_no_vision_stack():
    r = _fresh("import spikemfm, sys; print(sorted(m for m in ('lava', 'timm', 'open_clip', 'torchvision') "
               "if m in sys.modules))")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"

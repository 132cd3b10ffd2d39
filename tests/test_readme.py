"""The README's Python quick start runs as written (its first ``python`` block)."""
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_quick_start_runs():
    block = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block is not None, "README.md has no python block"
    done = subprocess.run([sys.executable, "-c", block.group(1)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'complete': 'yes'" in done.stdout  # the energy summary it prints, every term priced


def test_the_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250

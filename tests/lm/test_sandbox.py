"""The sandbox that runs generated code: limits that hold, and verdicts on hand-written programs."""
from __future__ import annotations

import pytest

from spikemfm.errors import ConfigError
from spikemfm.lm.sandbox import Outcome, SandboxConfig, network_isolation, run_program

FAST = SandboxConfig(timeout_s=2, memory_mib=512)


@pytest.mark.parametrize("prog,status", [
    ("assert sum([1, 2]) == 3", "passed"),
    ("assert sum([1, 2]) == 4", "failed"),
    ("raise SystemExit(3)", "failed"),
    ("while True:\n    pass", "timeout"),
    ("import time\ntime.sleep(60)", "timeout"),
])
def test_verdicts(prog, status):
    assert run_program(prog, FAST).status == status


@pytest.mark.parametrize("prog,fragment", [
    ("import os\nos.fork()", "NoneType"),                       # fork disabled
    ("import subprocess\nsubprocess.run(['true'])", "NoneType"),  # no child processes
    ("x = bytearray(2 << 30)", "MemoryError"),                  # 2 GiB against a 512 MiB limit
    ("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)", "network access is disabled"),
])
def test_guards_fail_the_program(prog, fragment):
    out = run_program(prog, FAST)
    assert out.status == "failed" and fragment in out.detail


def test_runs_in_a_fresh_folder_that_is_removed(tmp_path):
    marker = tmp_path / "seen"
    prog = f"import os\nopen('made.txt', 'w').write('x')\n" \
           f"open({str(marker)!r}, 'w').write(os.readlink('/proc/self/cwd'))"  # getcwd is disabled by the guard
    assert run_program(prog, FAST).passed
    made = marker.read_text()
    assert "spikemfm-sandbox-" in made
    import os
    assert not os.path.exists(made)  # the folder (and made.txt) removed afterwards


def test_not_in_this_process():
    import os
    assert run_program(f"import os\nassert os.getppid() != {os.getppid()} or True\nassert {os.getpid()} != "
                       "__import__('os').getpid()", FAST).passed


def test_network_isolation_is_reported():
    assert network_isolation() in ("namespace", "python-guard")


@pytest.mark.parametrize("field", ["timeout_s", "memory_mib", "file_mib"])
def test_config_refuses_nonpositive(field):
    with pytest.raises(ConfigError, match=field):
        SandboxConfig(**{field: 0})


def test_outcome_passed_only_when_passed():
    assert Outcome("passed").passed and not Outcome("timeout").passed

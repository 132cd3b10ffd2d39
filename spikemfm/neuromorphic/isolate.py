"""Runs a function in a fresh process group with a deadline.

Lava's runtime forks one OS process per Lava process, and an exception inside a process model can
leave ``run()`` waiting forever. Callers that must not hang (the CLI, the tests, the benchmark) run
the Lava work through :func:`run_isolated`: a spawned worker in its own session, killed with all
its children when the deadline passes; a failure in the worker is re-raised with its traceback.
"""
from __future__ import annotations

import importlib
import math
import multiprocessing as mp
import os
import queue
import shutil
import signal
import tempfile
import traceback
from typing import Any, Callable

from spikemfm.errors import SpikeMFMError


class WorkerTimeout(SpikeMFMError):
    """The isolated worker did not finish before its deadline (it and its children were killed)."""


class WorkerError(SpikeMFMError):
    """The isolated worker raised; the message holds its traceback."""


def _child(out: Any, module: str, name: str, kwargs: dict[str, Any], tmp: str) -> None:
    os.setsid()  # own process group: the parent can kill Lava's forked children with it
    # temp files (Lava probes, ...) in a folder the parent removes, even when it has to kill this worker
    os.environ["TMPDIR"] = tempfile.tempdir = tmp
    try:
        out.put(("ok", getattr(importlib.import_module(module), name)(**kwargs)))
    except SpikeMFMError as exc:  # a user-facing error: its one-line message is the report
        out.put(("error", f"{type(exc).__name__}: {exc}"))
    except BaseException:  # anything else: reported to the parent with the traceback, raised there
        out.put(("error", traceback.format_exc()))


def _kill_group(pid: int | None) -> None:
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the group already exited


def run_isolated(fn: Callable[..., Any], kwargs: dict[str, Any], timeout_s: float) -> Any:
    """Calls module-level ``fn(**kwargs)`` in a spawned worker; returns its (picklable) result.

    The worker and everything it started are killed when the deadline passes and when the caller is interrupted
    (Ctrl-C, or SIGTERM turned into ``SystemExit`` by the CLI); its temp files are removed in every case.

    Raises:
        ConfigError: ``timeout_s`` is not a positive finite number.
        WorkerTimeout: no result within ``timeout_s`` seconds.
        WorkerError: ``fn`` raised in the worker.
    """
    from spikemfm.errors import ConfigError

    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not math.isfinite(timeout_s) \
            or timeout_s <= 0:
        raise ConfigError(f"timeout={timeout_s!r}: give a positive number of seconds")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    tmp = tempfile.mkdtemp(prefix="spikemfm-worker-")
    proc = ctx.Process(target=_child, args=(out, fn.__module__, fn.__qualname__, kwargs, tmp))
    try:
        proc.start()
        try:
            status, payload = out.get(timeout=timeout_s)
        except queue.Empty:
            raise WorkerTimeout(f"{fn.__module__}.{fn.__qualname__} gave no result within {timeout_s:g} s "
                                "(a Lava process model that raised makes run() wait forever); the worker and its "
                                "process group were killed") from None
        proc.join(timeout=30)
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    if status == "error":
        raise WorkerError(f"{fn.__qualname__} failed in its worker process: {payload.rstrip()}")
    return payload


def _stop(proc: Any) -> None:
    """Kills the worker, then its process group (Lava's children): the worker first, since before it has called
    setsid() there is no group of its own to kill, and once dead it can fork no more children."""
    if proc.pid is None:
        return
    if proc.is_alive():
        proc.kill()
    _kill_group(proc.pid)
    proc.join()

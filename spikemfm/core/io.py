"""Atomic file output and provenance (git commit, config) for saved results.

Single files are written to a temp file and renamed. A command's set of files (a model with its summary, a table
with its plots) is written into a hidden staging folder and moved into place only when all of it is written
(:func:`output_set`), so a crash, a kill or a full disk leaves the previous set untouched rather than a new model
beside an old summary. The move itself holds the output folder's lock and is journalled: concurrent writers'
sets never interleave, and a writer killed mid-move leaves a set the next writer completes. Temp names carry the
writer's process id: leftovers of a killed writer are removed by the next writer in that folder.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from spikemfm.core.provenance import footer, provenance
from spikemfm.errors import OutputError

_STAGE = ".spikemfm-staging"


def _tmp_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}.tmp"


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def clean_stale(folder: Path) -> None:
    """Removes temp files and staging folders in ``folder`` left by writers that no longer run (``kill -9``)."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return
    for entry in entries:
        parts = entry.name.split(".")
        pid = parts[2].split("-")[0] if entry.name.startswith(_STAGE) and len(parts) > 2 else \
            parts[-2] if entry.name.startswith(".") and len(parts) >= 4 and parts[-1].startswith("tmp") else None
        if pid is not None and pid.isdigit() and _dead(int(pid)):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def _existing_ancestor(path: Path) -> Path:
    anc = path.absolute()
    while not anc.exists():
        anc = anc.parent
    return anc


def _anchor(path: Path) -> Path:
    """The existing folder a staging folder for ``path`` goes in: the first existing one above it."""
    return _existing_ancestor(path.parent if path.exists() else path)


def _check_writable(path: Path, what: str) -> Path:
    """The first existing folder above ``path``, after checking that a folder can be created in it."""
    anc = _anchor(path)
    if not anc.is_dir():
        raise OutputError(f"{what} {path}: {anc} is a file, not a folder; choose another --out")
    try:  # a real probe: os.access says yes to root even on /proc
        tempfile.TemporaryDirectory(prefix=f"{_STAGE}.{os.getpid()}-probe", dir=anc).cleanup()
    except OSError as exc:
        raise OutputError(f"{what} {path}: cannot create files in {anc} ({exc.strerror or exc}); choose another --out") \
            from None
    return anc


def check_out_dir(path: str | Path) -> Path:
    """Checks, before any work, that ``path`` is (or can become) a writable folder; returns it.

    Raises:
        OutputError: ``path`` is a file, lies under a file, or cannot be created / written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"output folder {path}: a file of that name exists; choose another --out")
    _check_writable(path, "output folder")
    return path


def check_out_file(path: str | Path) -> Path:
    """Checks, before any work, that the file ``path`` can be written (not a folder, its folder writable)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"output file {path}: is a folder; give a file name (e.g. {path / 'REPORT.md'})")
    check_out_dir(path.parent)
    return path


def _disk_error(exc: BaseException, out: Path) -> OutputError | None:
    """An :class:`OutputError` for a write that failed for lack of space (torch reports it as RuntimeError)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"output {out}: disk full ({exc.strerror}); nothing was written")
    if isinstance(exc, RuntimeError) and "write" in str(exc).lower() and ("file" in str(exc).lower()):
        return OutputError(f"output {out}: writing failed ({str(exc).splitlines()[0][:120]}); the disk may be "
                           "full; nothing was written")
    return None


@contextlib.contextmanager
def output_set(out_dir: str | Path) -> Iterator[Path]:
    """A staging folder for a set of output files; moved into ``out_dir`` only when the block succeeds.

    ``out_dir`` is checked first (:func:`check_out_dir`). Files already in ``out_dir`` that the set does not
    write are kept. On any failure the staging folder is removed and nothing in ``out_dir`` changes; a full disk
    becomes one :class:`OutputError`. The commit is a unit: it holds ``out_dir``'s lock (:func:`folder_lock`), so
    two writers' sets never interleave (the second waits), and it is journalled, so a writer killed between two
    renames leaves a set the next writer of ``out_dir`` completes before anything else.
    """
    out = check_out_dir(out_dir)
    anc = _anchor(out)
    clean_stale(anc)
    stage = Path(tempfile.mkdtemp(prefix=f"{_STAGE}.{os.getpid()}-", dir=anc))
    try:
        yield stage
        with folder_lock(out, "writing an output set there"):
            recover(out)
            _commit(stage, out)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        disk = _disk_error(exc, out)
        if disk is not None:
            raise disk from exc
        raise
    shutil.rmtree(stage, ignore_errors=True)


LOCK = ".spikemfm.lock"  # in an output folder: the writers' lock (its content: the holder's pid)
JOURNAL = ".spikemfm-commit.json"  # in an output folder while a set is being moved in
_COMMITTING = ".spikemfm-committing"  # a stage being moved in: never removed by clean_stale, only by recover
LOCK_WAIT_S = 1800.0


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str, wait_s: float | None = LOCK_WAIT_S) -> Iterator[None]:
    """Holds the exclusive lock of ``folder`` (``flock`` on ``folder/.spikemfm.lock``; the system releases it when
    the holder exits, however it exits). Another holder is waited for up to ``wait_s`` seconds (0: not at all);
    past that one :class:`OutputError` names its pid."""
    folder = Path(folder)
    created = [f for f in (folder, *folder.parents) if not f.exists()]  # left as found if nothing else lands there
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                _signal_waiting()
                if deadline is not None and time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    raise OutputError(f"{folder}: another spikemfm process (pid {holder}) is {what}; wait for it "
                                      "to finish or choose another --out") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        if created and folder.is_dir() and [p.name for p in folder.iterdir()] == [LOCK]:
            (folder / LOCK).unlink(missing_ok=True)  # a run that wrote nothing leaves no folder behind
            for f in created:
                with contextlib.suppress(OSError):
                    f.rmdir()
        os.close(fd)  # releases the lock


def recover(out: Path) -> None:
    """Completes a commit into ``out`` that a killed writer left half done (call with ``out``'s lock held): the
    rest of its staged files are moved in, so the folder again holds one writer's whole set."""
    journal = out / JOURNAL
    if not journal.exists():
        return
    try:
        stage = Path(json.loads(journal.read_text(encoding="utf-8"))["stage"])
    except (OSError, ValueError, KeyError, TypeError):
        stage = None
    if stage is not None and stage.is_dir():
        _move_all(stage, out)
        shutil.rmtree(stage, ignore_errors=True)
    journal.unlink(missing_ok=True)


def _move_all(stage: Path, out: Path) -> None:
    """Moves the staged files into ``out`` (renames on one file system), in the order they were written."""
    files = sorted((p for p in stage.rglob("*") if p.is_file()), key=lambda p: (p.stat().st_mtime_ns, str(p)))
    pause = os.environ.get("SPIKEMFM_TEST_COMMIT_PAUSE")  # tests: stop between two renames until told to go on
    for i, src in enumerate(files):
        dst = out / src.relative_to(stage)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        if pause and i == 0 and len(files) > 1:
            _pause(Path(pause))


def _signal_waiting() -> None:
    """Tests: say (once per wait) that this writer found the lock held."""
    folder = os.environ.get("SPIKEMFM_TEST_LOCK_WAIT")
    if folder:
        (Path(folder) / f"waiting.{os.getpid()}").touch()


def _pause(folder: Path) -> None:
    (folder / f"paused.{os.getpid()}").touch()
    while not (folder / "go").exists():
        time.sleep(0.02)


def _commit(stage: Path, out: Path) -> None:
    """Moves a finished stage into ``out`` under a journal (call with ``out``'s lock held)."""
    out.mkdir(parents=True, exist_ok=True)
    moving = stage.with_name(stage.name.replace(_STAGE, _COMMITTING, 1))
    os.replace(stage, moving)  # from here clean_stale leaves it: only recover() may finish or remove it
    atomic_write_bytes(out / JOURNAL, _json_bytes({"stage": str(moving), "pid": os.getpid()}))
    _move_all(moving, out)
    (out / JOURNAL).unlink()
    shutil.rmtree(moving, ignore_errors=True)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (what binds a summary or a table to the model file it describes)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Writes ``data`` to a temp file beside ``path`` then renames it, so no partial file is left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temp path beside ``path`` for a writer that needs a file name; renamed to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name), dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _utf8(text: str) -> bytes:
    """UTF-8, with a non-UTF-8 file name's surrogate escapes written as visible ``\\udcxx`` escapes."""
    return text.encode("utf-8", errors="backslashreplace")


def atomic_write_text(path: Path, text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, _utf8(text))


def _json_bytes(obj: Any) -> bytes:
    return _utf8(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_json(path: Path, obj: Any) -> Path:
    """Atomically writes ``obj`` as indented JSON."""
    return atomic_write_bytes(path, _json_bytes(obj))


def columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """All keys of the rows, in first-seen order."""
    return list(dict.fromkeys(k for r in rows for k in r))


def _csv_bytes(rows: list[Mapping[str, Any]]) -> bytes:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=columns(rows))
        writer.writeheader()
        writer.writerows(rows)
    return _utf8(buf.getvalue())


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Atomically writes dict rows as CSV (columns: every key, in first-seen order)."""
    return atomic_write_bytes(path, _csv_bytes(list(rows)))


def markdown_table(rows: list[Mapping[str, Any]], floatfmt: str = ".4g") -> str:
    """A GitHub markdown table of dict rows (columns from the first row)."""
    if not rows:
        return ""
    cols = columns(rows)

    def fmt(v: Any) -> str:  # a cell stays one cell: newlines and pipes in text (generated text) escaped
        text = format(v, floatfmt) if isinstance(v, float) else str(v)
        return text.replace("|", "\\|").replace("\r", "").replace("\n", "\\n")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def save_table(out_dir: Path, stem: str, rows: list[Mapping[str, Any]], config: Mapping[str, Any],
               title: str, extra: Mapping[str, Any] | None = None) -> str:
    """Writes ``stem``.json (rows, config, git commit and command), .csv and .md (with a footer naming the commit
    and the command) atomically; returns the markdown.

    All three are encoded before the first is written, so a value that cannot be written fails with none of
    them on disk.
    """
    out_dir, rows = Path(out_dir), list(rows)
    origin = provenance(config)
    md = f"## {title}\n\n" + markdown_table(rows) + footer(origin)
    data = {".json": _json_bytes({"title": title, **origin, "rows": rows, **(dict(extra) if extra else {})}),
            ".csv": _csv_bytes(rows), ".md": _utf8(md)}
    for suffix, payload in data.items():
        atomic_write_bytes(out_dir / f"{stem}{suffix}", payload)
    return md


def save_figure(fig: Any, path: Path) -> Path:
    """Saves a matplotlib figure as PNG atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return atomic_write_bytes(Path(path), buf.getvalue())


def safe_stem(name: str) -> str:
    """A file-name stem from a free-form name (a profile's ``name``): path separators, dots and anything but
    letters, digits, ``_`` and ``-`` become ``_``, so the name cannot point outside the output folder."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", str(name)).strip("_")
    return stem or "unnamed"

"""Atomic file output and provenance (git commit, config) for saved results."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Writes ``data`` to a temp file beside ``path`` then renames it, so no partial file is left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> Path:
    """Atomically writes ``obj`` as indented JSON."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """All keys of the rows, in first-seen order."""
    return list(dict.fromkeys(k for r in rows for k in r))


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Atomically writes dict rows as CSV (columns: every key, in first-seen order)."""
    rows = list(rows)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=columns(rows))
        writer.writeheader()
        writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def git_commit(repo: Path | None = None) -> str:
    """The current git commit (``-dirty`` when tracked files outside ``results/`` changed), or ``"unknown"``."""
    cwd = Path(repo) if repo else Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True).stdout.strip()
        # results being (re)written do not make the code that writes them dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"],
                               cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def provenance(config: Mapping[str, Any]) -> dict[str, Any]:
    """A provenance block to store beside results: config and git commit."""
    return {"config": dict(config), "git_commit": git_commit()}


def markdown_table(rows: list[Mapping[str, Any]], floatfmt: str = ".4g") -> str:
    """A GitHub markdown table of dict rows (columns from the first row)."""
    if not rows:
        return ""
    cols = columns(rows)

    def fmt(v: Any) -> str:
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def save_table(out_dir: Path, stem: str, rows: list[Mapping[str, Any]], config: Mapping[str, Any],
               title: str, extra: Mapping[str, Any] | None = None) -> str:
    """Writes ``stem``.json (rows + config + git commit), .csv and .md atomically; returns the markdown."""
    out_dir = Path(out_dir)
    md = f"## {title}\n\n" + markdown_table(list(rows))
    write_json(out_dir / f"{stem}.json", {"title": title, **provenance(config), "rows": list(rows),
                                          **(dict(extra) if extra else {})})
    write_csv(out_dir / f"{stem}.csv", rows)
    atomic_write_text(out_dir / f"{stem}.md", md)
    return md


def save_figure(fig: Any, path: Path) -> Path:
    """Saves a matplotlib figure as PNG atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return atomic_write_bytes(Path(path), buf.getvalue())

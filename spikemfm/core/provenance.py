"""Where a result comes from: the commit of the code that made it, the command that ran, and whether that code has
changed since.

Every results table (:func:`spikemfm.core.io.save_table`) records ``git_commit`` and ``command``. A script that
writes the project's results (``experiments/``, ``benchmarks/``) calls :func:`results_run` first: it refuses a
working tree whose code differs from its commit, since such results could not be regenerated, unless
``--allow-dirty`` is given, which marks them (``-dirty`` commit, ``allow_dirty: true``). The command line's own
outputs record the same fields without refusing (they are the user's runs, not the project's results).
:func:`staleness` tells whether the code a results folder depends on changed after the commit that made it.
"""
from __future__ import annotations

import ast
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from spikemfm.errors import OutputError

REPO = Path(__file__).resolve().parents[2]
_POLICY: dict[str, bool] = {}  # set by results_run: {"strict": refuse a dirty tree at save time too}


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def git_commit() -> str:
    """The current git commit (``-dirty`` when tracked files outside ``results/`` changed), or ``"unknown"``."""
    try:
        sha = _git("rev-parse", "HEAD")
        # results being (re)written do not make the code that writes them dirty
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!results")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def command(argv: list[str] | None = None) -> str:
    """The command that made this process's results, as one would type it again from the repository root:
    ``python experiments/qat.py --steps 100``, or ``spikemfm energy …`` for the command line."""
    argv = list(sys.argv if argv is None else argv)
    if not argv or not argv[0]:
        return "python"
    head = Path(argv[0])
    if head.name in ("spikemfm", "__main__.py") and "spikemfm" in str(head):
        prog = ["spikemfm"]
    elif head.suffix == ".py":
        try:
            prog = ["python", str(head.resolve().relative_to(REPO))]
        except ValueError:
            prog = ["python", str(head)]
    else:
        prog = [head.name]
    return " ".join(shlex.quote(a) for a in [*prog, *argv[1:]])


def add_results_args(parser: Any) -> None:
    """The ``--allow-dirty`` flag of a results script."""
    parser.add_argument("--allow-dirty", action="store_true", help="write results although the code differs from "
                        "its git commit (marked -dirty: they cannot be regenerated from a commit)")


def results_run(allow_dirty: bool) -> None:
    """Called by a results script before its work: refuses a dirty tree (unless ``allow_dirty``) now, and makes
    :func:`provenance` refuse at save time if the tree became dirty during the run."""
    _POLICY["strict"] = not allow_dirty
    _POLICY["allow_dirty"] = allow_dirty
    check_clean()


def check_clean() -> None:
    """Raises :class:`OutputError` when a results script runs on code that differs from its commit."""
    if _POLICY.get("strict") and git_commit().endswith("-dirty"):
        raise OutputError("results: the code differs from its git commit (tracked files changed), so these results "
                          "could not be regenerated from a commit; commit first, or pass --allow-dirty (the results "
                          "are then marked -dirty)")


def provenance(config: Mapping[str, Any]) -> dict[str, Any]:
    """A provenance block to store beside results: config, git commit and command (refused on a dirty tree in a
    results script that did not allow it)."""
    check_clean()
    block = {"config": dict(config), "git_commit": git_commit(), "command": command()}
    if _POLICY.get("allow_dirty"):
        block["allow_dirty"] = True
    return block


def footer(data: Mapping[str, Any]) -> str:
    """The markdown footer naming a table's commit and command."""
    return f"\n_commit `{data.get('git_commit', 'unknown')}` · command `{data.get('command', 'not recorded')}`_\n"


def _module_files(script: Path) -> set[Path]:
    """The script and every spikemfm module it imports, transitively (imports inside functions included)."""
    todo, seen = [script], set()
    while todo:
        f = todo.pop()
        if f in seen or not f.is_file():
            continue
        seen.add(f)
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        for n in ast.walk(tree):
            if isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
                names = [n.module, *(f"{n.module}.{a.name}" for a in n.names)]
            else:
                continue
            for name in (m for m in names if m.split(".")[0] == "spikemfm"):
                base = REPO.joinpath(*name.split("."))
                todo += [p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()]
    return seen


def dependencies(cmd: str) -> set[Path]:
    """The source files a command's results depend on: its script (or the CLI) and what it imports; profiles and
    assets the package ships are included with the package's data folders."""
    words = shlex.split(cmd) if cmd else []
    if words[:1] == ["spikemfm"]:
        script = REPO / "spikemfm" / "cli" / (words[1] + ".py" if len(words) > 1 else "main.py")
        files = _module_files(script) | _module_files(REPO / "spikemfm" / "cli" / "main.py")
    elif len(words) > 1 and words[1].endswith(".py"):
        files = _module_files(REPO / words[1])
    else:
        return set()
    data = [REPO / "spikemfm" / "hardware" / "profiles", REPO / "spikemfm" / "assets"]
    return files | {p for d in data for p in d.rglob("*") if p.is_file()}


def staleness(commit: str, cmd: str) -> str:
    """``current``, or why a result cannot be trusted to match the code: no command or commit recorded, a dirty
    commit, or the files it depends on that changed since its commit."""
    if not cmd:
        return "no command recorded"
    if not commit or commit == "unknown":
        return "no commit recorded"
    if commit.endswith("-dirty"):
        return "made from uncommitted code (-dirty)"
    deps = dependencies(cmd)
    if not deps:
        return "dependencies unknown (not a script of this repository)"
    rel = sorted(str(p.relative_to(REPO)) for p in deps)
    try:
        changed = _git("diff", "--name-only", commit, "HEAD", "--", *rel).splitlines()
    except (OSError, subprocess.CalledProcessError):
        return f"commit {commit[:12]} not in this repository"
    if not changed:
        return "current"
    return f"code changed since ({len(changed)} files, e.g. {', '.join(changed[:3])})"

"""``spikemfm report``: one markdown report from every saved results table (JSON) and plot (PNG).

Each table written by :func:`spikemfm.io.save_table` is a JSON file holding its title, rows, config
and git commit; the report lists them by folder, with the commit and the command-line config that
produced each, so every number in it can be traced back to a script run.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from spikemfm.errors import ConfigError
from spikemfm.io import atomic_write_text, markdown_table


def _tables(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(root.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"report: {path} is not readable JSON ({exc})") from exc
        if isinstance(data, dict) and isinstance(data.get("rows"), list) and "title" in data:
            out.append((path, data))
    return out


def build_report(root: str | Path, out: str | Path) -> Path:
    """Writes ``out`` (markdown) with every table and PNG under ``root``; returns its path."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise ConfigError(f"report: results folder {root} does not exist; run the experiments first")
    tables = _tables(root)
    if not tables:
        raise ConfigError(f"report: no saved tables (JSON with title and rows) under {root}")
    lines = [f"# spikemfm results report\n\nFrom `{root}`: {len(tables)} tables.\n"]
    shown: set[Path] = set()
    for path, data in tables:
        rel = path.relative_to(root)
        lines.append(f"## {data['title']}\n\n`{rel}` · commit `{data.get('git_commit', 'unknown')}` · "
                     f"config `{json.dumps(data.get('config', {}), sort_keys=True, default=str)}`\n")
        lines.append(markdown_table(data["rows"]) if data["rows"] else "(no rows)\n")
        if path.parent not in shown:  # a folder's plots, once, after its first table
            shown.add(path.parent)
            lines += [f"![{png.stem}]({os.path.relpath(png.resolve(), out.parent.resolve())})\n"
                      for png in sorted(path.parent.glob("*.png"))]
    atomic_write_text(out, "\n".join(lines))
    return out

"""TOML configuration files shared by several commands: one file, a top level plus one table per command.

A file holds option names (``max_spikes`` or ``max-spikes``) at the top level or in a table named after the
command (``[energy]``); the tables of other commands are skipped. Errors name the file and the key.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Sequence

from spikemfm.errors import ConfigError


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML document at ``path``; one :class:`ConfigError` naming the file when it cannot be read."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: cannot read it as TOML ({exc})") from exc


def split_config(path: str | Path, command: str, commands: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(top-level keys, keys of the ``[command]`` table) of ``path``, dashes read as underscores; the tables of
    the other ``commands`` are left out (one file may configure several commands)."""
    data = read_toml(path)
    own = data.get(command, {})
    if not isinstance(own, dict):
        raise ConfigError(f"config file {path}: [{command}] must be a table")
    top = {k: v for k, v in data.items() if k not in commands}

    def norm(d: dict[str, Any]) -> dict[str, Any]:
        return {k.replace("-", "_"): v for k, v in d.items()}

    return norm(top), norm(own)


def select_keys(path: str | Path, command: str, top: dict[str, Any], own: dict[str, Any], known: set[str],
                elsewhere: set[str]) -> dict[str, Any]:
    """The values that apply to ``command``: its own table's keys (each must be one of ``known``), over the top-level
    keys it knows; a top-level key that only another command knows (``elsewhere``) is skipped, any other one is
    an error naming the file."""
    unknown = sorted(set(own) - known) + sorted(set(top) - known - elsewhere)
    if unknown:
        raise ConfigError(f"config file {path}: unknown field(s) {unknown} for '{command}'; known: {sorted(known)}")
    return {**{k: v for k, v in top.items() if k in known}, **own}

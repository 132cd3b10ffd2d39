"""TOML config files for the CLI sub-commands: file values under flags, over defaults.

A file holds a sub-command's option names (``max_spikes`` or ``max-spikes``) either at the top level
or in a table named after the command (``[energy]``), so one file can configure several commands;
tables for other commands are ignored. A flag given on the command line always wins. Every value
goes through the option's own type and choices, so a file cannot smuggle in what the flag refuses;
unknown keys and bad values raise :class:`~spikemfm.errors.ConfigError` naming the file and the key.
"""
from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any, Sequence

from spikemfm.errors import ConfigError

_NOT_CONFIGURABLE = ("help", "config", "func", "command")
COMMANDS = ("demo", "energy", "convert", "simulate", "lava", "report", "stream")  # their tables in a shared file


def options_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest not in _NOT_CONFIGURABLE and a.option_strings}


def _given(action: argparse.Action, argv: Sequence[str]) -> bool:
    """Whether the flag appears on the command line (``--flag v`` or ``--flag=v``)."""
    return any(arg == opt or arg.startswith(opt + "=") for arg in argv for opt in action.option_strings)


def _convert(path: Path, key: str, action: argparse.Action, value: Any) -> Any:
    many = action.nargs in ("+", "*")
    if many and not isinstance(value, list):
        value = [value]  # a shared top-level `timesteps = 16` is one value of demo's list
    if many != isinstance(value, list):
        raise ConfigError(f"config file {path}: {key} must be {'a list' if many else 'a single value'}, got {value!r}")
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ConfigError(f"config file {path}: {key} must be true or false, got {value!r}")
        return value
    items = value if many else [value]
    out = []
    for item in items:
        if isinstance(item, (dict, list)):
            raise ConfigError(f"config file {path}: {key} holds a nested value {item!r}")
        try:  # the flag's own parser: int('8'), float(8), str(16) all behave as on the command line
            converted = action.type(str(item)) if action.type is not None else str(item)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config file {path}: {key}={item!r} is invalid ({exc})") from exc
        if action.choices is not None and converted not in action.choices:
            raise ConfigError(f"config file {path}: {key}={item!r}; choose from {list(action.choices)}")
        out.append(converted)
    return out if many else out[0]


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


def apply_config(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str],
                 command: str, elsewhere: dict[str, set[str]] | None = None) -> argparse.Namespace:
    """``args`` with the values of ``args.config`` filled in wherever the flag was not given.

    ``elsewhere``: the option names of every command (by command), so that a shared file's top-level keys meant
    for other commands are skipped rather than refused.
    """
    path = getattr(args, "config", None)
    if path is None:
        return args
    options = options_of(parser)
    others = elsewhere or {}
    top, own = split_config(path, command, [*COMMANDS, *others])
    values = select_keys(path, command, top, own, set(options), set().union(*others.values()) if others else set())
    for key, value in values.items():
        action = options[key]
        if not _given(action, argv):
            setattr(args, key, _convert(Path(path), key, action, value))
    return args

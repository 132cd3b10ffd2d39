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


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest not in _NOT_CONFIGURABLE and a.option_strings}


def _given(action: argparse.Action, argv: Sequence[str]) -> bool:
    """Whether the flag appears on the command line (``--flag v`` or ``--flag=v``)."""
    return any(arg == opt or arg.startswith(opt + "=") for arg in argv for opt in action.option_strings)


def _convert(path: Path, key: str, action: argparse.Action, value: Any) -> Any:
    many = action.nargs in ("+", "*")
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


def read_command_config(path: str | Path, command: str) -> dict[str, Any]:
    """The keys of ``path`` that apply to ``command`` (top level, then its own table on top)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc})") from exc
    own = data.get(command, {})
    if not isinstance(own, dict):
        raise ConfigError(f"config file {path}: [{command}] must be a table")
    top = {k: v for k, v in data.items() if not isinstance(v, dict)}
    return {k.replace("-", "_"): v for k, v in {**top, **own}.items()}


def apply_config(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str],
                 command: str) -> argparse.Namespace:
    """``args`` with the values of ``args.config`` filled in wherever the flag was not given."""
    path = getattr(args, "config", None)
    if path is None:
        return args
    options = _options(parser)
    values = read_command_config(path, command)
    unknown = sorted(set(values) - set(options))
    if unknown:
        raise ConfigError(f"config file {path}: unknown field(s) {unknown} for '{command}'; "
                          f"known: {sorted(options)}")
    for key, value in values.items():
        action = options[key]
        if not _given(action, argv):
            setattr(args, key, _convert(Path(path), key, action, value))
    return args

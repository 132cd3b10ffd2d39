"""TOML config files for the CLI sub-commands: file values under flags, over defaults.

A file holds a sub-command's option names (``max_spikes`` or ``max-spikes``) either at the top level
or in a table named after the command (``[energy]``), so one file can configure several commands;
tables for other commands are ignored. A flag given on the command line always wins. Every value
goes through the option's own type and choices, so a file cannot smuggle in what the flag refuses;
unknown keys and bad values raise :class:`~spikemfm.errors.ConfigError` naming the file and the key.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from spikemfm.core.config_files import select_keys, split_config
from spikemfm.errors import ConfigError

_NOT_CONFIGURABLE = ("help", "config", "func", "command")


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


def apply_config(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str],
                 command: str, elsewhere: dict[str, set[str]]) -> argparse.Namespace:
    """``args`` with the values of ``args.config`` filled in wherever the flag was not given.

    ``elsewhere``: the option names of every other command (by command, from the parser:
    :func:`spikemfm.cli.main.all_options`), so that their tables and the top-level keys only they take are skipped
    rather than refused.
    """
    path = getattr(args, "config", None)
    if path is None:
        return args
    options = options_of(parser)
    top, own = split_config(path, command, [command, *elsewhere])
    values = select_keys(path, command, top, own, set(options), set().union(set(), *elsewhere.values()))
    for key, value in values.items():
        action = options[key]
        if not _given(action, argv):
            setattr(args, key, _convert(Path(path), key, action, value))
    return args

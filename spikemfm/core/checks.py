"""Type and finiteness checks of frozen config dataclasses, run first in their ``__post_init__``.

Configs arrive from TOML files, JSON metadata of saved models and Python callers, so a field can hold any
type: ``calib_samples = 64.5``, ``model = 5``, ``budget = nan``. Each would otherwise fail deep inside the work
(a TypeError after a model has loaded, a NaN budget after 30 s of sensitivity analysis). This checks every
scalar field against its annotation (``int``, ``float``, ``str``, ``bool`` and unions of them with ``None``)
before anything runs: integers are not bools or floats, floats are finite real numbers. Container fields are
left to the config's own checks.
"""
from __future__ import annotations

import math
import types
import typing
from dataclasses import fields
from typing import Any

from spikemfm.errors import ConfigError

_SCALARS = (bool, int, float, str, type(None))


def _accepts(kind: type, value: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is type(None):
        return value is None
    return isinstance(value, kind)


def _scalar_kinds(hint: Any) -> tuple[type, ...] | None:
    """The scalar types a field annotation allows (None: not a plain scalar field, not checked here)."""
    if hint in _SCALARS:
        return (hint,)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = typing.get_args(hint)
        if all(k in _SCALARS for k in kinds):
            return kinds
    return None


def _name(kinds: tuple[type, ...]) -> str:
    words = {bool: "true/false", int: "an integer", float: "a finite number", str: "a string",
             type(None): "none"}
    return " or ".join(words[k] for k in kinds)


def check_field_types(obj: Any) -> None:
    """Raises :class:`ConfigError` naming ``Class.field`` when a scalar field holds a value of the wrong type,
    or a float field a NaN / infinity."""
    hints = typing.get_type_hints(type(obj))
    owner = type(obj).__name__
    for f in fields(obj):
        kinds = _scalar_kinds(hints.get(f.name))
        value = getattr(obj, f.name)
        if kinds is not None and not any(_accepts(k, value) for k in kinds):
            raise ConfigError(f"{owner}.{f.name}={value!r}: must be {_name(kinds)}")

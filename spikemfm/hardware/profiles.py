"""Hardware energy profiles: TOML data files, one per target, every number with its provenance.

The ``[profile]`` table names the target (``name``, ``title``, ``scope``, ``notes``) and says how it moves spikes:
``messages = "unit"`` (default: a burst of k spikes is k address events, each a synaptic op per target) or
``"graded"`` (Loihi 2, SpiNNaker 2: one message per firing neuron per step carrying the integer count; each target
does one multiply-accumulate at the payload width, priced by the ``graded_synop`` term). ``dense_reference``
names the profile on which the dense baselines are priced when the target has no dense path of its own (a
neuromorphic chip against an int8 accelerator: a cross-chip comparison, and the reports say so).
``neuron_updates`` says which neurons the target updates per step: ``"every_step"`` (default: every neuron,
every step — Loihi's compartments, SpiNNaker's timer ticks) or ``"on_input"`` (an event-driven design: only
neurons whose input changed or that fire, counted by ``simulate(..., count_updates=True)``; an IF neuron has no
leak, so the others have nothing to do). ``base`` names a profile whose terms (and unset ``[profile]`` fields)
this one inherits, so a variant states only what differs.

Each ``[terms.NAME]`` table holds ``value`` (a number, or the string ``"null"`` for a term the source
does not give), ``unit`` (``pJ`` or ``x MAC``, relative to the profile's ``int8_mac``; the system terms of
:mod:`spikemfm.energy.system` in ``pJ/bit``, ``GB/s``, ``GMAC/s``, ``W``, ``us``, ``ns``, ``bytes``, ``bits`` or
``count``), ``source``,
``evidence`` (measured / simulated / derived / assumed) and ``scope`` (per-term / all-in). A term a
profile lacks is null, never 0: totals that need it are reported as incomplete.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping

from spikemfm.errors import ConfigError

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
EVIDENCE = ("measured", "simulated", "derived", "assumed")
SCOPES = ("per-term", "all-in")
UNITS = ("pJ", "x MAC", "pJ/bit", "GB/s", "GMAC/s", "W", "us", "ns", "bytes", "bits", "count")  # system terms: energy.system
MESSAGES = ("unit", "graded")
NEURON_UPDATES = ("every_step", "on_input")


@dataclass(frozen=True)
class Term:
    """One energy figure and where it comes from."""

    name: str
    value: float | None
    unit: str
    source: str
    evidence: str
    scope: str


@dataclass(frozen=True)
class Profile:
    """A hardware target's energy figures."""

    name: str
    title: str
    scope: str
    notes: str
    terms: Mapping[str, Term]
    path: str
    messages: str = "unit"
    dense_reference: str | None = None
    neuron_updates: str = "every_step"

    def pj(self, name: str) -> float | None:
        """Energy of term ``name`` in pJ, or None when the profile has no such figure."""
        term = self.terms.get(name)
        if term is None or term.value is None:
            return None
        if term.unit == "x MAC":
            anchor = self.pj("int8_mac")
            return None if anchor is None else term.value * anchor
        return term.value


def _term(path: Path, name: str, raw: Mapping) -> Term:
    where = f"{path}: [terms.{name}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table with value, unit, source, evidence and scope, got {raw!r}")
    for key in ("value", "unit", "source", "evidence", "scope"):
        if key not in raw:
            raise ConfigError(f"{where}: missing field {key!r}")
    value = raw["value"]
    if value == "null":
        value = None
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}.value={value!r}: must be a finite non-negative number or \"null\"")
    if raw["unit"] not in UNITS:
        raise ConfigError(f"{where}.unit={raw['unit']!r}: must be one of {UNITS}")
    if raw["evidence"] not in EVIDENCE:
        raise ConfigError(f"{where}.evidence={raw['evidence']!r}: must be one of {EVIDENCE}")
    if raw["scope"] not in SCOPES:
        raise ConfigError(f"{where}.scope={raw['scope']!r}: must be one of {SCOPES}")
    return Term(name, None if value is None else float(value), raw["unit"], str(raw["source"]),
                raw["evidence"], raw["scope"])


def available_profiles() -> list[str]:
    """Names of the profiles shipped with spikemfm."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def _path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise ConfigError(f"unknown energy profile {name_or_path!r}; shipped: {available_profiles()}")
    return path


def _read(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict, dict]:
    """([profile] fields, [terms] tables) of a profile file, over those of its ``base`` (inherited first)."""
    if path.resolve() in chain:
        raise ConfigError(f"{path}: [profile].base forms a cycle ({' -> '.join(str(p) for p in chain)})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read energy profile ({exc})") from exc
    head, table = raw.get("profile"), raw.get("terms", {})
    if not isinstance(head, dict):
        raise ConfigError(f"{path}: needs a [profile] table with a name (a string) and scope in {SCOPES}")
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [terms] must be a table of [terms.NAME] tables")
    base = head.get("base")
    if base is None:
        return head, {k: (path, v) for k, v in table.items()}
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: [profile].base={base!r} must name a profile (a shipped name or a file path)")
    try:
        base_path = path.parent / base if Path(base).suffix else _path(base)  # a file: relative to this one
    except ConfigError as exc:
        raise ConfigError(f"{path}: [profile].base: {exc}") from exc
    inherited, terms = _read(base_path, (*chain, path.resolve()))
    fields = {k: v for k, v in inherited.items() if k not in ("name", "title", "notes")}
    return {**fields, **{k: v for k, v in head.items() if k != "base"}}, \
        {**terms, **{k: (path, v) for k, v in table.items()}}


def load_profile(name_or_path: str | Path | Profile) -> Profile:
    """Loads a shipped profile by name or any profile file by path (with the terms of its ``base``); a
    :class:`Profile` is returned as it is.

    Raises:
        ConfigError: unknown name, unreadable file, or a field with an invalid value (the message
            names the file and the field).
    """
    if isinstance(name_or_path, Profile):
        return name_or_path
    path = _path(name_or_path)
    head, table = _read(path)
    if not isinstance(head.get("name"), str) or not head["name"].strip() or head.get("scope") not in SCOPES:
        raise ConfigError(f"{path}: needs a [profile] table with a name (a string) and scope in {SCOPES}")
    for key in ("title", "notes", "dense_reference"):
        if not isinstance(head.get(key, ""), str):
            raise ConfigError(f"{path}: [profile].{key} must be a string")
    if head.get("messages", "unit") not in MESSAGES:
        raise ConfigError(f"{path}: [profile].messages={head.get('messages')!r}: choose one of {MESSAGES}")
    if head.get("neuron_updates", "every_step") not in NEURON_UPDATES:
        raise ConfigError(f"{path}: [profile].neuron_updates={head.get('neuron_updates')!r}: choose one of "
                          f"{NEURON_UPDATES}")
    terms = {k: _term(where, k, v) for k, (where, v) in table.items()}
    profile = Profile(head["name"], head.get("title", head["name"]), head["scope"], head.get("notes", ""),
                      MappingProxyType(terms), str(path), head.get("messages", "unit"), head.get("dense_reference"),
                      head.get("neuron_updates", "every_step"))
    if profile.messages == "graded" and "graded_synop" not in terms:
        raise ConfigError(f"{path}: messages = \"graded\" needs a [terms.graded_synop] (one target's "
                          "multiply-accumulate of a graded message)")
    return profile


def counts_updates(profiles: Iterable[Profile | str | Path]) -> bool:
    """Whether pricing a run on ``profiles`` needs its neuron updates counted (``simulate(...,
    count_updates=...)``): some profile updates neurons on input only."""
    return any(load_profile(p).neuron_updates == "on_input" for p in profiles)

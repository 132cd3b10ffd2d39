"""Hardware energy profiles: TOML data files, one per target, every number with its provenance.

The ``[profile]`` table names the target (``name``, ``title``, ``scope``, ``notes``) and says how it moves spikes:
``messages = "unit"`` (default: a burst of k spikes is k address events, each a synaptic op per target) or
``"graded"`` (Loihi 2, SpiNNaker 2: one message per firing neuron per step carrying the integer count; each target
does one multiply-accumulate at the payload width, priced by the ``graded_synop`` term). ``dense_reference``
names the profile on which the dense baselines are priced when the target has no dense path of its own (a
neuromorphic chip against an int8 accelerator: a cross-chip comparison, and the reports say so).

Each ``[terms.NAME]`` table holds ``value`` (a number, or the string ``"null"`` for a term the source
does not give), ``unit`` (``pJ`` or ``x MAC``, relative to the profile's ``int8_mac``), ``source``,
``evidence`` (measured / simulated / derived / assumed) and ``scope`` (per-term / all-in). A term a
profile lacks is null, never 0: totals that need it are reported as incomplete.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from spikemfm.errors import ConfigError

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
EVIDENCE = ("measured", "simulated", "derived", "assumed")
SCOPES = ("per-term", "all-in")
UNITS = ("pJ", "x MAC")
MESSAGES = ("unit", "graded")


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


def load_profile(name_or_path: str | Path) -> Profile:
    """Loads a shipped profile by name or any profile file by path.

    Raises:
        ConfigError: unknown name, unreadable file, or a field with an invalid value (the message
            names the file and the field).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise ConfigError(f"unknown energy profile {name_or_path!r}; shipped: {available_profiles()}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read energy profile ({exc})") from exc
    head = raw.get("profile")
    if not isinstance(head, dict) or not isinstance(head.get("name"), str) or not head["name"].strip() \
            or head.get("scope") not in SCOPES:
        raise ConfigError(f"{path}: needs a [profile] table with a name (a string) and scope in {SCOPES}")
    for key in ("title", "notes", "dense_reference"):
        if not isinstance(head.get(key, ""), str):
            raise ConfigError(f"{path}: [profile].{key} must be a string")
    if head.get("messages", "unit") not in MESSAGES:
        raise ConfigError(f"{path}: [profile].messages={head.get('messages')!r}: choose one of {MESSAGES}")
    table = raw.get("terms", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [terms] must be a table of [terms.NAME] tables")
    terms = {k: _term(path, k, v) for k, v in table.items()}
    profile = Profile(head["name"], head.get("title", head["name"]), head["scope"], head.get("notes", ""),
                      MappingProxyType(terms), str(path), head.get("messages", "unit"), head.get("dense_reference"))
    if profile.messages == "graded" and "graded_synop" not in terms:
        raise ConfigError(f"{path}: messages = \"graded\" needs a [terms.graded_synop] (one target's "
                          "multiply-accumulate of a graded message)")
    return profile

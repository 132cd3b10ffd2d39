"""Mixed-precision bit allocation under a budget, from measured sensitivity.

Weights and spiking activations are allocated separately (their budgets differ in kind: bits per
parameter vs bits per neuron). Each is a multiple-choice knapsack: pick one bit width b_i per knob
to minimise Σ D_i(b_i) (measured distortion, :mod:`spikemfm.convert.sensitivity`) subject to
Σ size_i · b_i ≤ budget · Σ size_i. Solved exactly by dynamic programming over the cost in units of
the sizes' greatest common divisor; when that table would be too large the unit is coarsened and
each cost rounded *up*, so the budget still holds and the solution is optimal on that grid.
"""
from __future__ import annotations

import glob
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from spikemfm.checks import check_field_types
from spikemfm.convert.config import CLIP_METHODS, MAX_BITS, MIN_BITS, QuantConfig, check_precision
from spikemfm.convert.sensitivity import Knob, Sensitivity
from spikemfm.errors import ConfigError

_MAX_CELLS = 20_000_000


@dataclass(frozen=True)
class MixedPrecisionConfig:
    """Mixed-precision quantization under a budget.

    Attributes:
        budget: average bits per weight parameter and per spiking neuron (the activations' budget
            unless ``act_budget`` is given).
        weight_bytes: alternatively, the most bytes the integer weights may take (overrides ``budget``
            for weights).
        act_budget: average bits per spiking neuron (default: ``budget``).
        candidates: bit widths to choose from.
        clip: activation range calibration (as in :class:`QuantConfig`).
        max_calib_batches: calibration batches consumed at most.
        sensitivity_batches: of those, batches used to measure sensitivity.
        outlier_fraction: share of a layer's output channels that may form an outlier group.
        outlier_share: a weight gets its own outlier group (own bits) when its top ``outlier_fraction``
            channels carry at least this share of the layer's quantization error.
        precision: float path precision of the QANN and its SNN (as in :class:`QuantConfig`).
    """

    budget: float | None = 6.0
    weight_bytes: int | None = None
    act_budget: float | None = None
    candidates: tuple[int, ...] = (2, 3, 4, 5, 6, 8)
    clip: str = "mse"
    max_calib_batches: int = 16
    sensitivity_batches: int = 2
    outlier_fraction: float = 0.125
    outlier_share: float = 0.5
    precision: str = "float64"

    def __post_init__(self) -> None:
        check_field_types(self)
        check_precision("MixedPrecisionConfig", self.precision)
        c = self.candidates
        if not c or any(not isinstance(b, int) or not MIN_BITS <= b <= MAX_BITS for b in c) or len(set(c)) != len(c):
            raise ConfigError(f"MixedPrecisionConfig.candidates={c!r}: distinct integers in [{MIN_BITS}, {MAX_BITS}]")
        if self.budget is None and self.weight_bytes is None:
            raise ConfigError("MixedPrecisionConfig: give budget (average bits) or weight_bytes")
        for name in ("budget", "act_budget"):
            v = getattr(self, name)
            if v is not None and v < min(c):
                raise ConfigError(f"MixedPrecisionConfig.{name}={v}: below the smallest candidate ({min(c)} bits); "
                                  "no allocation can meet it")
        if self.budget is None and self.act_budget is None:
            raise ConfigError("MixedPrecisionConfig: weight_bytes alone leaves the activations without a budget; "
                              "set act_budget too")
        if self.weight_bytes is not None and self.weight_bytes <= 0:
            raise ConfigError(f"MixedPrecisionConfig.weight_bytes={self.weight_bytes}: must be positive")
        if self.clip not in CLIP_METHODS:
            raise ConfigError(f"MixedPrecisionConfig.clip={self.clip!r}: choose one of {CLIP_METHODS}")
        for name in ("outlier_fraction", "outlier_share"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"MixedPrecisionConfig.{name}={getattr(self, name)}: must lie in (0, 1]")
        if not 1 <= self.sensitivity_batches <= self.max_calib_batches:
            raise ConfigError("MixedPrecisionConfig.sensitivity_batches must lie in [1, max_calib_batches]")


def solve_knapsack(sizes: list[int], distortions: list[dict[int, float]], capacity: float) -> list[int]:
    """Bits per item minimising Σ distortions[i][b_i] with Σ sizes[i]·b_i ≤ capacity (exact DP on a grid).

    Raises:
        ConfigError: when even the smallest bit widths exceed the capacity.
    """
    unit = math.gcd(*sizes)
    cap = int(capacity // unit)
    while cap * len(sizes) > _MAX_CELLS:  # coarsen; costs round up below, so the result stays feasible
        unit *= 2
        cap = int(capacity // unit)
    best = np.full(cap + 1, np.inf)
    best[0] = 0.0
    choice = np.zeros((len(sizes), cap + 1), dtype=np.int64)
    for i, (size, d) in enumerate(zip(sizes, distortions)):
        new = np.full(cap + 1, np.inf)
        for bits, dist in d.items():
            cost = -(-size * bits // unit)
            if cost > cap:
                continue
            cand = np.full(cap + 1, np.inf)
            cand[cost:] = best[:cap + 1 - cost] + dist
            better = cand < new
            new[better], choice[i, better] = cand[better], bits
        best = new
    end = int(np.argmin(best))
    if not np.isfinite(best[end]):
        lowest = sum(s * min(d) for s, d in zip(sizes, distortions))
        raise ConfigError(f"no bit allocation meets the budget: {capacity:.0f} bit-units available, the smallest "
                          f"candidates need {lowest:.0f}")
    bits, c = [0] * len(sizes), end
    for i in range(len(sizes) - 1, -1, -1):
        bits[i] = int(choice[i, c])
        c -= -(-sizes[i] * bits[i] // unit)
    return bits


@dataclass
class BitAllocation:
    """The chosen bits per knob, with the measured sensitivity behind them."""

    bits: dict[tuple[str, str], int]
    sensitivity: Sensitivity
    config: MixedPrecisionConfig
    summary: dict[str, float] = field(default_factory=dict)

    def quant_config(self) -> QuantConfig:
        """The per-layer :class:`QuantConfig` this allocation stands for (exact-name overrides)."""
        knobs = {k.key: k for k in self.sensitivity.knobs}
        acts = tuple((glob.escape(knobs[key].name), b) for key, b in self.bits.items() if key[0] == "act")
        weights = tuple((glob.escape(knobs[key].name), b) for key, b in self.bits.items()
                        if key[0] == "weight" and knobs[key].channels is None)
        groups = tuple((knobs[key].name, knobs[key].channels, b) for key, b in self.bits.items()
                       if key[0] == "weight" and knobs[key].channels is not None)
        return QuantConfig(bits=max(self.config.candidates), clip=self.config.clip, act_overrides=acts,
                           weight_overrides=weights, channel_overrides=groups,
                           max_calib_batches=self.config.max_calib_batches, precision=self.config.precision)

    def save(self, out_dir: str | Path, stem: str = "bit_report") -> str:
        """Writes the per-layer bit report as ``stem``.json (with summary, config, git commit), .csv and .md."""
        from spikemfm.io import save_table

        return save_table(Path(out_dir), stem, self.rows(), asdict(self.config),
                          f"per-layer bits ({self.sensitivity.measure})", extra={"summary": self.summary})

    def rows(self) -> list[dict]:
        """Per-layer bit report: knob, size, chosen bits, its distortion, distortion per candidate."""
        out = []
        for row in self.sensitivity.rows():
            b = self.bits[(row["kind"], row["name"])]  # rows name knobs by their key
            out.append({"kind": row["kind"], "name": row["name"], "block": row["block"], "size": row["size"],
                        "bits": b, "D_at_bits": row[f"D@{b}"], **{k: v for k, v in row.items()
                                                                  if k not in ("kind", "name", "block", "size")}})
        return out


def _average(knobs: list[Knob], bits: dict[tuple[str, str], int], kind: str) -> float:
    sel = [k for k in knobs if k.kind == kind]
    return sum(k.size * bits[k.key] for k in sel) / sum(k.size for k in sel)


def allocate(sens: Sensitivity, cfg: MixedPrecisionConfig) -> BitAllocation:
    """Solves the weight and the activation knapsacks under ``cfg``'s budgets."""
    bits: dict[tuple[str, str], int] = {}
    for kind in ("weight", "act"):
        sel = [k for k in sens.knobs if k.kind == kind]
        total = sum(k.size for k in sel)
        if kind == "weight":
            capacity = cfg.weight_bytes * 8 if cfg.weight_bytes is not None else cfg.budget * total
        else:
            capacity = (cfg.act_budget if cfg.act_budget is not None else cfg.budget) * total
        chosen = solve_knapsack([k.size for k in sel], [sens.knob_d[k.key] for k in sel], capacity)
        bits.update({k.key: b for k, b in zip(sel, chosen)})
    alloc = BitAllocation(bits, sens, cfg)
    alloc.summary = {
        "avg_weight_bits": _average(sens.knobs, bits, "weight"), "avg_act_bits": _average(sens.knobs, bits, "act"),
        "weight_bytes": sum(k.size * bits[k.key] for k in sens.knobs if k.kind == "weight") / 8,
        "predicted_D": sum(sens.knob_d[key][b] for key, b in bits.items())}
    return alloc

"""Mixed-precision bit allocation under a budget, from measured sensitivity.

Weights and spiking activations are allocated separately (their budgets differ in kind: bits per
parameter vs bits per neuron). Each is a multiple-choice knapsack: pick one bit width b_i per knob
to minimise Σ D_i(b_i) (measured distortion, :mod:`spikemfm.convert.sensitivity`) subject to
Σ size_i · b_i ≤ budget · Σ size_i. Solved exactly by dynamic programming over the cost in units of
the sizes' greatest common divisor; when that table would be too large the unit is coarsened and
each cost rounded *up*, so the budget still holds and the solution is optimal on that grid.

Energy-aware (``energy_budget_nj``): the activation knapsack's cost of a knob is instead its spike-driven energy
on a hardware profile (measured spikes × fan-out × synaptic op, :mod:`spikemfm.convert.energy_alloc`), solved on a
grid of real costs rounded up the same way.
"""
from __future__ import annotations

import glob
import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from spikemfm.core.checks import check_field_types
from spikemfm.convert.config import CLIP_METHODS, MAX_BITS, MIN_BITS, QuantConfig, check_precision
from spikemfm.convert.energy_alloc import knob_energy, layer_weight_bits
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
        energy_budget_nj: instead of ``act_budget``, the most spike-driven energy per input (nJ) the activations
            may cost on ``energy_profile`` (each knob priced as measured spikes × fan-out × the profile's synaptic
            op; :mod:`spikemfm.convert.energy_alloc`). The summary then reports the predicted energy and the
            energies of the all-lowest and all-highest allocations.
        energy_profile: the hardware profile (name or TOML path) of ``energy_budget_nj``.
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
    energy_budget_nj: float | None = None
    energy_profile: str = "loihi2"

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
        if self.budget is None and self.act_budget is None and self.energy_budget_nj is None:
            raise ConfigError("MixedPrecisionConfig: weight_bytes alone leaves the activations without a budget; "
                              "set act_budget or energy_budget_nj too")
        self._check_energy()
        if self.weight_bytes is not None and self.weight_bytes <= 0:
            raise ConfigError(f"MixedPrecisionConfig.weight_bytes={self.weight_bytes}: must be positive")
        if self.clip not in CLIP_METHODS:
            raise ConfigError(f"MixedPrecisionConfig.clip={self.clip!r}: choose one of {CLIP_METHODS}")
        for name in ("outlier_fraction", "outlier_share"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"MixedPrecisionConfig.{name}={getattr(self, name)}: must lie in (0, 1]")
        if not 1 <= self.sensitivity_batches <= self.max_calib_batches:
            raise ConfigError("MixedPrecisionConfig.sensitivity_batches must lie in [1, max_calib_batches]")


    def _check_energy(self) -> None:
        if self.energy_budget_nj is None:
            return
        if self.act_budget is not None:
            raise ConfigError("MixedPrecisionConfig: give act_budget (bits) or energy_budget_nj (energy), not both")
        if self.energy_budget_nj <= 0:
            raise ConfigError(f"MixedPrecisionConfig.energy_budget_nj={self.energy_budget_nj}: must be positive")
        from spikemfm.hardware.profiles import load_profile

        try:
            load_profile(self.energy_profile)
        except ConfigError as e:
            raise ConfigError(f"MixedPrecisionConfig.energy_profile: {e}") from None


def _solve(costs: list[dict[int, int]], distortions: list[dict[int, float]], cap: int) -> list[int] | None:
    """Exact multiple-choice knapsack on integer costs: the choice per item minimising Σ distortion with
    Σ cost ≤ cap, or None when no choice fits."""
    best = np.full(cap + 1, np.inf)
    best[0] = 0.0
    choice = np.zeros((len(costs), cap + 1), dtype=np.int64)
    for i, (cost_i, d) in enumerate(zip(costs, distortions)):
        new = np.full(cap + 1, np.inf)
        for bits, dist in d.items():
            cost = cost_i[bits]
            if cost > cap:
                continue
            cand = np.full(cap + 1, np.inf)
            cand[cost:] = best[:cap + 1 - cost] + dist
            better = cand < new
            new[better], choice[i, better] = cand[better], bits
        best = new
    end = int(np.argmin(best))
    if not np.isfinite(best[end]):
        return None
    bits, c = [0] * len(costs), end
    for i in range(len(costs) - 1, -1, -1):
        bits[i] = int(choice[i, c])
        c -= costs[i][bits[i]]
    return bits


def solve_costs(costs: list[dict[int, float]], distortions: list[dict[int, float]], capacity: float,
                cells: int = 20_000) -> list[int] | None:
    """Multiple-choice knapsack on real costs: costs are rounded *up* to a grid of ``cells`` per capacity, so the
    result always meets the capacity and is optimal on that grid; None when nothing fits."""
    # cells = ⌈c · cells / capacity⌉ in exact rationals: float division can round a cost one ulp above the capacity
    # down onto the last cell, and then the "always meets the capacity" promise breaks (found by hypothesis)
    cap = Fraction(capacity)
    grid = [{b: math.ceil(Fraction(c) * cells / cap) for b, c in ci.items()} for ci in costs]
    return _solve(grid, distortions, cells)


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
    bits = _solve([{b: -(-size * b // unit) for b in d} for size, d in zip(sizes, distortions)], distortions, cap)
    if bits is None:
        lowest = sum(s * min(d) for s, d in zip(sizes, distortions))
        raise ConfigError(f"no bit allocation meets the budget: {capacity:.0f} bit-units available, the smallest "
                          f"candidates need {lowest:.0f}")
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
        from spikemfm.core.io import save_table

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


def _bit_budget(sens: Sensitivity, cfg: MixedPrecisionConfig, kind: str) -> dict[tuple[str, str], int]:
    sel = [k for k in sens.knobs if k.kind == kind]
    total = sum(k.size for k in sel)
    if kind == "weight":
        capacity = cfg.weight_bytes * 8 if cfg.weight_bytes is not None else cfg.budget * total
    else:
        capacity = (cfg.act_budget if cfg.act_budget is not None else cfg.budget) * total
    chosen = solve_knapsack([k.size for k in sel], [sens.knob_d[k.key] for k in sel], capacity)
    return {k.key: b for k, b in zip(sel, chosen)}


def _energy_budget(sens: Sensitivity, cfg: MixedPrecisionConfig,
                   weight_bits: dict[tuple[str, str], int]) -> tuple[dict[tuple[str, str], int], dict[str, float]]:
    """Activation bits under ``cfg.energy_budget_nj`` on ``cfg.energy_profile``, and the energy summary."""
    from spikemfm.hardware.profiles import load_profile

    if not sens.spikes:
        raise ConfigError("energy_budget_nj needs a sensitivity analysis with spike counts; run analyze() again "
                          "with this version of spikemfm")
    energy = knob_energy(sens, load_profile(cfg.energy_profile), layer_weight_bits(weight_bits))
    sel = [k for k in sens.knobs if k.kind == "act"]
    lo, hi = min(sens.candidates), max(sens.candidates)
    lowest = sum(energy[k.key][lo] for k in sel) / 1e3
    chosen = solve_costs([energy[k.key] for k in sel], [sens.knob_d[k.key] for k in sel], cfg.energy_budget_nj * 1e3)
    if chosen is None:
        raise ConfigError(f"MixedPrecisionConfig.energy_budget_nj={cfg.energy_budget_nj:g}: no allocation fits; "
                          f"the lowest candidates ({lo} bits everywhere) already cost {lowest:.4g} nJ per input "
                          f"on {cfg.energy_profile}")
    bits = {k.key: b for k, b in zip(sel, chosen)}
    return bits, {"energy_profile": cfg.energy_profile, "energy_budget_nj": cfg.energy_budget_nj,
                  "predicted_spike_energy_nj": sum(energy[k][b] for k, b in bits.items()) / 1e3,
                  "spike_energy_at_lowest_nj": lowest,
                  "spike_energy_at_highest_nj": sum(energy[k.key][hi] for k in sel) / 1e3,
                  "max_act_bits": max(bits.values())}


def allocate(sens: Sensitivity, cfg: MixedPrecisionConfig) -> BitAllocation:
    """Solves the weight knapsack, then the activation knapsack under ``cfg``'s bit or energy budget."""
    bits = _bit_budget(sens, cfg, "weight")
    extra: dict[str, float] = {}
    if cfg.energy_budget_nj is None:
        bits.update(_bit_budget(sens, cfg, "act"))
    else:
        acts, extra = _energy_budget(sens, cfg, bits)
        bits.update(acts)
    alloc = BitAllocation(bits, sens, cfg)
    alloc.summary = {
        "avg_weight_bits": _average(sens.knobs, bits, "weight"), "avg_act_bits": _average(sens.knobs, bits, "act"),
        "weight_bytes": sum(k.size * bits[k.key] for k in sens.knobs if k.kind == "weight") / 8,
        "predicted_D": sum(sens.knob_d[key][b] for key, b in bits.items()), **extra}
    return alloc

"""``estimate_energy``: spiking path vs dense accelerator path, per layer, with break-even spike rates."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from spikemfm.hardware import costs as C
from spikemfm.hardware.profiles import Profile, load_profile
from spikemfm.energy.workload import LayerWork, layer_work, steps_run
from spikemfm.errors import ConfigError
from spikemfm.ir import units
from spikemfm.snn.simulate import SimResult

RATE_DEPENDENT = ("synapse", "spike_product")


def baseline_bits(timesteps: int) -> dict[str, int]:
    """Dense baselines: FP32 ANN, int8 ANN, and a QANN of ⌈log2(T+1)⌉ bits (Yan et al. 2024)."""
    return {"fp32": 32, "int8": 8, "qann_bitmatched": max(2, math.ceil(math.log2(timesteps + 1)))}


class Acc:
    """Sums costs and collects the names of missing terms."""

    def __init__(self) -> None:
        self.total = 0.0
        self.missing: set[str] = set()

    def add(self, count: float, cost: C.Cost) -> None:
        value, missing = cost
        if count == 0:
            return
        if value is None:
            self.missing.update(missing)
        else:
            self.total += count * value

    def merge(self, other: "Acc") -> None:
        """Adds another sum's priced part and its missing terms."""
        self.total += other.total
        self.missing |= other.missing

    @property
    def value(self) -> float | None:
        return None if self.missing else self.total


def _snn(p: Profile, w: LayerWork, dp: Profile) -> tuple[Acc, Acc]:
    """(all SNN energy, the part that scales with the spike rate) of one layer.

    Unit-message profiles pay one synaptic op per unit spike and target and route every unit spike; graded
    ones (``messages = "graded"``) pay one multiply-accumulate per message and target and route each message
    once, whatever its payload. The analog encoding layer runs once, in fp32, on the dense path of ``dp`` (the
    profile itself, or the accelerator a spiking chip's dense work is priced on: a chip has no fp32 MACs).
    """
    acc, rate = Acc(), Acc()
    graded = p.messages == "graded"
    if w.kind == "encoding":  # the analog input layer: the same fp32 MACs and traffic as a dense layer
        return dense_work(dp, w, 32), rate
    if w.kind in RATE_DEPENDENT:
        if graded:
            count, cost = w.event_sops, C.graded_synop(p)
        else:
            count, cost = w.sops, C.synop(p, w.w_bits) if w.kind == "synapse" else C.product_op(p, w.a_bits)
        acc.add(count, cost)
        rate.add(count, cost)
    elif w.kind == "neuron":
        acc.add(w.active_neuron_steps, C.neuron_update(p, True))
        acc.add(_idle_updates(p, w), C.neuron_update(p, False))
        sent = w.messages if graded else w.spikes
        acc.add(sent, C.route(p))
        rate.add(sent, C.route(p))
    elif w.kind in units.KINDS:
        acc.add(w.float_evals, C.float_element(p, units.get(w.kind), w.row))
    elif w.kind == "lut":
        acc.add(w.float_evals, C.lookup(p, w.a_bits))
    return acc, rate


def _idle_updates(p: Profile, w: LayerWork) -> float:
    """Updates of neurons that did not fire: every other neuron-step (``every_step``), or only those whose input
    changed (``on_input``: an event-driven chip leaves a neuron with unchanged input and nothing to fire alone)."""
    if p.neuron_updates == "every_step":
        return w.neuron_steps - w.active_neuron_steps
    if w.updated_neuron_steps is None:
        raise ConfigError(f"profile {p.name!r} updates neurons on input only ({p.path}: neuron_updates = "
                          "\"on_input\"): simulate with count_updates=True so that the run counts them")
    return w.updated_neuron_steps - w.active_neuron_steps


def dense_work(p: Profile, w: LayerWork, bits: int) -> Acc:
    acc = Acc()
    if w.kind in ("encoding", "synapse", "spike_product"):
        acc.add(w.dense_macs, C.mac(p, bits))
        acc.add(w.weights, C.mem(p, bits, "weights"))
        acc.add(w.act_elements, C.mem(p, bits, "acts"))
    elif w.kind in units.KINDS:
        acc.add(w.dense_elements, C.float_element(p, units.get(w.kind), w.row))
    elif w.kind == "lut":
        acc.add(w.dense_elements, C.float_element(p, "gelu") if bits >= 32 else C.lookup(p, bits))
    return acc


@dataclass(frozen=True)
class EnergyRow:
    """One layer's energy (pJ per inference) on the spiking path and on each dense baseline.

    A value is None when the profile cannot price one of its terms; ``missing`` names them (never priced as 0).
    ``spike_rate`` / ``break_even_rate`` are set for synaptic layers: their input's spikes per neuron per step,
    and the rate below which this layer alone would cost less than the bit-matched QANN's.
    """

    layer: str
    kind: str
    label: str
    snn_pj: float | None
    dense_pj: dict[str, float | None]
    missing: tuple[str, ...] = ()
    spike_rate: float | None = None
    break_even_rate: float | None = None

    @property
    def complete(self) -> bool:
        return not self.missing

    def as_dict(self) -> dict:
        """A flat table row (``snn_pJ``, ``<baseline>_pJ``, ``missing_terms``, ...)."""
        row = {"layer": self.layer, "kind": self.kind, "label": self.label, "snn_pJ": self.snn_pj}
        row.update({f"{b}_pJ": v for b, v in self.dense_pj.items()})
        if self.spike_rate is not None:
            row["spike_rate"] = self.spike_rate
            row["break_even_rate_vs_qann_bitmatched"] = self.break_even_rate
        row["missing_terms"] = ", ".join(self.missing)
        return row


@dataclass
class EnergyReport:
    """Energy per inference (pJ) of the spiking path and of each dense baseline.

    Totals sum what the profile can price; ``snn_missing`` / ``dense_missing`` name the terms it lacks,
    and such a total is reported as incomplete (never as if the missing terms were 0).
    ``break_even_rate[b]``: the uniform spike rate (spikes per neuron per step) below which the SNN
    would use less energy than baseline b, holding its rate-independent energy fixed (0: never).
    """

    profile: str
    timesteps: int
    baselines: dict[str, int]
    dense_profile: str = ""
    messages: str = "unit"
    neuron_updates: str = "every_step"
    steps: float = 0.0  # steps run per input: T, or fewer on average when the run was adaptive
    rows: list[EnergyRow] = field(default_factory=list)
    snn_total: float = 0.0
    dense_total: dict[str, float] = field(default_factory=dict)
    snn_missing: list[str] = field(default_factory=list)
    dense_missing: dict[str, list[str]] = field(default_factory=dict)
    spike_rate: float = 0.0
    break_even_rate: dict[str, float | None] = field(default_factory=dict)
    snn_rate_part: float = 0.0  # pJ of snn_total that scales with the spike rate (synaptic ops, routing)

    @property
    def missing(self) -> list[str]:
        return sorted(set(self.snn_missing).union(*self.dense_missing.values()))

    @property
    def complete(self) -> bool:
        return not self.missing

    def ratio(self, baseline: str) -> float | None:
        """SNN energy / baseline energy (None when either total is incomplete)."""
        d = self.dense_total.get(baseline)
        if self.snn_missing or self.dense_missing.get(baseline) or not d:
            return None
        return self.snn_total / d

    def layer_rows(self) -> list[dict]:
        """Every layer as a flat table row (:meth:`EnergyRow.as_dict`)."""
        return [r.as_dict() for r in self.rows]

    def summary(self) -> dict:
        """One row: totals (nJ), ratios and break-even rates."""
        row = {"profile": self.profile, "messages": self.messages, "neuron_updates": self.neuron_updates,
               "dense_profile": self.dense_profile or self.profile,
               "T": self.timesteps, "steps": round(self.steps, 3), "spike_rate": round(self.spike_rate, 5),
               "snn_nJ": _nj(self.snn_total, self.snn_missing)}
        for b in self.baselines:
            row[f"{b}_nJ"] = _nj(self.dense_total.get(b), self.dense_missing.get(b))
            r = self.ratio(b)
            row[f"snn/{b}"] = None if r is None else round(r, 3)
            be = self.break_even_rate.get(b)
            row[f"break_even_rate_vs_{b}"] = None if be is None else round(be, 5)
        row["complete"] = "yes" if self.complete else "incomplete: no " + ", ".join(self.missing)
        return row


def _nj(v: float | None, missing: list[str] | None = None) -> float | str | None:
    if v is None:
        return None
    return f">= {v / 1000.0:.4g} (incomplete)" if missing else round(v / 1000.0, 3)


def profiles_for(profile: Profile | str | Path) -> tuple[Profile, Profile]:
    """(the profile, the profile its dense baselines are priced on: its ``dense_reference`` or itself)."""
    p = profile if isinstance(profile, Profile) else load_profile(profile)
    return p, load_profile(p.dense_reference) if p.dense_reference else p


def estimate_energy(sim: SimResult, profile: Profile | str | Path) -> EnergyReport:
    """Prices a simulation's work on a hardware profile against the dense baselines (priced on the profile's
    ``dense_reference`` when it names one: a spiking chip has no dense path)."""
    p, dp = profiles_for(profile)
    works = layer_work(sim)
    bl = baseline_bits(sim.timesteps)
    rep = EnergyReport(p.name, sim.timesteps, bl, dp.name, p.messages, p.neuron_updates, steps_run(sim))
    snn_all, rate_all = Acc(), Acc()
    dense_all = {b: Acc() for b in bl}
    spikes = steps = 0.0
    for w in works:
        s, r = _snn(p, w, dp)
        snn_all.merge(s)
        rate_all.merge(r)
        dense = {b: dense_work(dp, w, bits) for b, bits in bl.items()}
        for b, d in dense.items():
            dense_all[b].merge(d)
        rate = be = None
        bitmatched = dense["qann_bitmatched"].value
        if w.kind == "synapse" and w.in_neuron_steps and w.in_spikes and s.value and bitmatched:
            rate = w.in_spikes / w.in_neuron_steps
            be = rate * bitmatched / s.value
        missing = set(s.missing).union(*(d.missing for d in dense.values()))
        rep.rows.append(EnergyRow(w.name, w.kind, w.label, s.value, {b: d.value for b, d in dense.items()},
                                  tuple(sorted(missing)), rate, be))
        if w.kind == "neuron":
            spikes, steps = spikes + w.spikes, steps + w.neuron_steps
    rep.snn_total, rep.snn_missing = snn_all.total, sorted(snn_all.missing)
    rep.snn_rate_part = rate_all.total
    rep.dense_total = {b: a.total for b, a in dense_all.items()}
    rep.dense_missing = {b: sorted(a.missing) for b, a in dense_all.items()}
    rep.spike_rate = spikes / steps if steps else 0.0
    for b, d in rep.dense_total.items():
        e_r = rate_all.value
        if rep.ratio(b) is None or not e_r:
            rep.break_even_rate[b] = None
        else:
            rep.break_even_rate[b] = max(0.0, rep.spike_rate * (d - (rep.snn_total - e_r)) / e_r)
    return rep


def dense_energy(sim: SimResult, profile: Profile | str | Path, bits: int) -> tuple[float | None, list[str]]:
    """(pJ per inference, missing terms) of a dense ANN at ``bits`` running the simulated tower's graph once,
    priced on the profile's dense reference (or the profile itself): the dense rows of a search, at any width."""
    _, dp = profiles_for(profile)
    acc = Acc()
    for w in layer_work(sim):
        acc.merge(dense_work(dp, w, bits))
    return acc.value, sorted(acc.missing)

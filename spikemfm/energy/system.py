"""The system around the operations: DRAM traffic, batch, on-chip capacity, chip count, static power, latency.

The operation energies of :mod:`spikemfm.energy.model` assume every weight is read once from on-chip SRAM. This
module adds what a system pays beyond them, from the profile's ``[terms]`` (a term it lacks is reported
missing, never 0):

**Dense accelerator** at batch b with on-chip capacity C bytes (``onchip_bytes``; the profile's own when None).
Weights are resident layer by layer, in execution order, while they fit in C; every other layer's weights stream
from DRAM once per batch. Activations of the largest layer × b, and the KV cache, spill when they exceed what the
resident weights leave free (written and read back once)::

    dram_bits   = 8 · (Σ_streamed weight_bytes + b · kv_bytes + b · spill_bytes)        per batch
    E_dram      = dram_bits · dram_pj_per_bit / b                                      per inference
    t_batch     = max(b · MACs / peak_macs_per_s, dram_bits / 8 / dram_bytes_per_s)
    E_static    = static_w · t_batch / b

**Neuromorphic system**: the weights (at ``bits_per_synapse``) and the neurons stay resident in the cores::

    chips       = ⌈max(synapses · bits_per_synapse / synapse_bits_per_chip, neurons / neurons_per_chip)⌉
    t_step      = max(step_floor_us, max_l synops_l per pass / cores_l · synop_ns)
                  cores_l = chips · cores_per_chip · synapses_l / synapses   (cores hold layers by synapse memory)
    latency     = (steps + depth − 1) · t_step       (one algorithmic step per layer of pipeline)

One token at batch 1 keeps only one layer's cores busy per algorithmic step, so a layer's step takes its
synaptic operations divided by *its* cores; more chips shorten the step but add static power in proportion, so
static energy per token does not fall with the chip count (spike products' work is not placed on cores here).
    E_static    = chips · static_w_per_chip · latency
    E_interchip = messages · (chips − 1) / chips · interchip_pj     (uniform placement, assumed)

**A stream at a frame rate** (``frame_s`` = 1 / fps): a system dedicated to a stream draws static power for the
whole frame period, not only while it computes::

    E_static    = chips · static_w_per_chip · max(latency, frame_s)         (SNN; ``realtime``: latency ≤ frame_s)
    E_static    = static_w · max(t_batch, frame_s) / b                       (dense: b streams batched per frame)

**Break-even activity**: the SNN's energy as its activity (synaptic operations, spikes, messages) scales by s with
its steps held fixed — E(s) = fixed ops + s · (rate ops + inter-chip) + static(latency(s)), latency(s) =
(steps + depth − 1) · max(floor, s · t_active) — equals a dense row's at s = ``break_even_x`` (bisection; None when
even a silent network, s = 0, costs more; ``BE_CAP`` when it still wins there); ``break_even_rate`` = s × the
measured spike rate (spikes per neuron per step). ``silent_nj`` on the SNN row is E(0).

Every row reports ``energy_nj`` = operations + memory + static (+ inter-chip), ``dram_nj``, ``static_nj``,
``latency_ms`` and ``chips``; ``missing`` names the terms a profile could not supply.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from spikemfm.energy.workload import LayerWork
from spikemfm.hardware.profiles import Profile

DENSE_TERMS = ("dram_pj_per_bit", "dram_gbps", "peak_gmacs", "static_w", "onchip_bytes")
CHIP_TERMS = ("neurons_per_chip", "synapse_bits_per_chip", "bits_per_synapse", "cores_per_chip", "synop_ns",
              "step_floor_us", "static_w_per_chip", "interchip_pj")
BE_CAP = 1000.0  # break_even_x reported when the SNN still wins at 1000x its measured activity


@dataclass(frozen=True)
class Activity:
    """An SNN system row's energy (nJ) as a function of its activity factor s (module docstring)."""

    fixed_nj: float
    rate_nj: float
    interchip_nj: float
    pipeline: float
    t_active_s: float
    floor_s: float
    static_w: float
    frame_s: float | None = None

    def latency_s(self, s: float) -> float:
        return self.pipeline * max(self.floor_s, s * self.t_active_s)

    def energy_nj(self, s: float) -> float:
        static = self.static_w * max(self.latency_s(s), self.frame_s or 0.0) * 1e9
        return self.fixed_nj + s * (self.rate_nj + self.interchip_nj) + static


def break_even(a: Activity | None, dense_nj: float | None) -> float | None:
    """The activity factor s at which ``a`` costs ``dense_nj`` (E(s) is non-decreasing), or None / BE_CAP."""
    if a is None or dense_nj is None or a.energy_nj(0.0) >= dense_nj:
        return None
    if a.energy_nj(BE_CAP) <= dense_nj:
        return BE_CAP
    lo, hi = 0.0, BE_CAP
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if a.energy_nj(mid) <= dense_nj else (lo, mid)
    return lo


@dataclass
class SystemRow:
    """One system estimate (per inference or per token, as ``unit`` says)."""

    model: str
    profile: str
    path: str
    batch: int
    onchip_bytes: float | None
    unit: str
    ops_nj: float | None
    dram_nj: float | None = 0.0
    static_nj: float | None = 0.0
    interchip_nj: float | None = 0.0
    latency_ms: float | None = None
    chips: int | None = None
    missing: list[str] = field(default_factory=list)
    t_step_us: float | None = None
    frame_s: float | None = None
    activity: Activity | None = None

    @property
    def energy_nj(self) -> float | None:
        parts = (self.ops_nj, self.dram_nj, self.static_nj, self.interchip_nj)
        return None if self.missing or any(p is None for p in parts) else sum(parts)

    def as_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else float(f"{v:.5g}")  # noqa: E731
        return {"model": self.model, "profile": self.profile, "path": self.path, "batch": self.batch,
                "onchip_bytes": self.onchip_bytes, "unit": self.unit, "energy_nj": r(self.energy_nj),
                "ops_nj": r(self.ops_nj), "dram_nj": r(self.dram_nj), "static_nj": r(self.static_nj),
                "interchip_nj": r(self.interchip_nj), "latency_ms": r(self.latency_ms), "chips": self.chips,
                "t_step_us": r(self.t_step_us),
                "missing": ", ".join(self.missing) or ""} | self.frame_columns()

    def frame_columns(self) -> dict[str, Any]:
        """``frame_ms`` and ``realtime`` (latency within the frame period) of a stream's row; nothing otherwise."""
        if self.frame_s is None:
            return {}
        ok = None if self.latency_ms is None else self.latency_ms <= self.frame_s * 1e3
        return {"frame_ms": round(self.frame_s * 1e3, 4), "realtime": ok}


def terms(p: Profile, names: tuple[str, ...]) -> tuple[dict[str, float], list[str]]:
    """(the values of ``names`` the profile has, the names it lacks)."""
    got = {n: p.terms[n].value for n in names if n in p.terms and p.terms[n].value is not None}
    return got, [n for n in names if n not in got]


def weighted(works: list[LayerWork]) -> list[LayerWork]:
    """The layers whose weights a dense accelerator holds or streams, in execution order."""
    return [w for w in works if w.kind in ("synapse", "spike_product", "encoding") and w.weights]


def dense_system(works: list[LayerWork], p: Profile, ops_nj: float | None, batch: int,
                 onchip_bytes: float | None = None, kv_bytes: float = 0.0, model: str = "", unit: str = "inference",
                 bits: int = 8, frame_s: float | None = None) -> SystemRow:
    """A dense accelerator at ``batch`` (weights at ``bits``) with ``onchip_bytes`` of buffer, per inference (per
    frame of each of ``batch`` streams when ``frame_s`` is given)."""
    t, missing = terms(p, DENSE_TERMS)
    cap = onchip_bytes if onchip_bytes is not None else t.get("onchip_bytes")
    if cap is None:
        return SystemRow(model, p.name, "dense", batch, None, unit, ops_nj, None, None, 0.0, None, 1, missing)
    used, streamed = 0.0, 0.0
    for w in weighted(works):
        size = w.weights * bits / 8
        if used + size <= cap:
            used += size
        else:
            streamed += size
    acts = max((w.act_elements * bits / 8 for w in works), default=0.0) * batch
    free = max(0.0, cap - used)
    spill = acts if acts > free else 0.0
    kv = kv_bytes * batch if kv_bytes * batch > max(0.0, free - min(acts, free)) else 0.0
    dram_bits = 8 * (streamed + kv + 2 * spill)
    macs = sum(w.dense_macs for w in works)
    need = [n for n in ("dram_pj_per_bit", "dram_gbps", "peak_gmacs", "static_w") if n in missing]
    if need:
        return SystemRow(model, p.name, "dense", batch, cap, unit, ops_nj, None, None, 0.0, None, 1, need)
    t_batch = max(batch * macs / (t["peak_gmacs"] * 1e9), dram_bits / 8 / (t["dram_gbps"] * 1e9))
    return SystemRow(model, p.name, "dense", batch, cap, unit, ops_nj,
                     dram_nj=dram_bits * t["dram_pj_per_bit"] / batch / 1e3,
                     static_nj=t["static_w"] * max(t_batch, frame_s or 0.0) / batch * 1e9, latency_ms=t_batch * 1e3,
                     chips=1, frame_s=frame_s)


def chip_system(works: list[LayerWork], p: Profile, ops_nj: float | None, steps: float, depth: int,
                model: str = "", unit: str = "inference", extra_state_bits: float = 0.0, rate_nj: float = 0.0,
                frame_s: float | None = None) -> SystemRow:
    """A neuromorphic system holding the converted model (and ``extra_state_bits``, e.g. a KV cache) on chip;
    ``rate_nj``: the part of ``ops_nj`` that scales with the spike rate (for the break-even activity)."""
    t, missing = terms(p, CHIP_TERMS)
    if missing:
        return SystemRow(model, p.name, "snn", 1, None, unit, ops_nj, 0.0, None, None, None, None, missing)
    synapses = sum(w.weights for w in works if w.kind == "synapse")
    neurons = sum(w.neurons for w in works if w.kind == "neuron")
    bits = synapses * t["bits_per_synapse"] + extra_state_bits
    chips = max(1, math.ceil(max(bits / t["synapse_bits_per_chip"], neurons / t["neurons_per_chip"])))
    messages = sum(w.messages or w.spikes for w in works if w.kind == "neuron")
    t_active = layer_step_s(works, synapses, chips * t["cores_per_chip"], steps, t["synop_ns"])
    t_step = max(t["step_floor_us"] * 1e-6, t_active)
    latency = (steps + depth - 1) * t_step
    interchip = messages * (chips - 1) / chips * t["interchip_pj"] / 1e3
    activity = None if ops_nj is None else Activity(ops_nj - rate_nj, rate_nj, interchip, steps + depth - 1,
                                                     t_active, t["step_floor_us"] * 1e-6,
                                                     chips * t["static_w_per_chip"], frame_s)
    return SystemRow(model, p.name, "snn", 1, chips * t["synapse_bits_per_chip"] / 8, unit, ops_nj,
                     dram_nj=0.0, static_nj=chips * t["static_w_per_chip"] * max(latency, frame_s or 0.0) * 1e9,
                     interchip_nj=interchip, latency_ms=latency * 1e3, chips=chips, t_step_us=t_step * 1e6,
                     frame_s=frame_s, activity=activity)


def layer_step_s(works: list[LayerWork], synapses: float, cores: float, steps: float, synop_ns: float) -> float:
    """The slowest synaptic layer's time per algorithmic step (s): its operations per pass over its cores."""
    worst = 0.0
    for w in works:
        if w.kind == "synapse" and w.weights:
            cores_l = cores * w.weights / synapses
            worst = max(worst, (w.event_sops or w.sops) / max(steps, 1.0) / cores_l * synop_ns * 1e-9)
    return worst


def neuron_depth(netlist: Any) -> int:
    """Neuron layers on the netlist's longest path (records in execution order, each after its inputs): the
    algorithmic steps a signal needs to cross the network on a chip that moves spikes one layer per step."""
    from spikemfm.ir.netlist import NeuronLayer

    depth: dict[str, int] = {}
    for r in netlist:
        d = max((depth.get(i, 0) for i in r.inputs), default=0)
        depth[r.name] = d + (1 if isinstance(r, NeuronLayer) else 0)
    return max(depth.values(), default=0)


def system_rows(sim: Any, rep: Any, systems: tuple[tuple[int, float | None], ...], model: str = "",
                unit: str = "inference", kv_bytes: float = 0.0, frame_s: float | None = None,
                dense_ops_nj: dict[str, float | None] | None = None) -> list[dict[str, Any]]:
    """The simulated SNN on the report's chips, and the dense model on the report's dense reference for each
    (batch, on-chip bytes or None = the whole model) pair, as table rows (``kv_bytes``: a decoder's cache;
    ``frame_s``: a stream's frame period). ``dense_ops_nj`` maps each dense path's name to its operation energy
    (default: ``{"dense": the report's int8 total}``); every dense row carries the SNN's break-even activity."""
    from spikemfm.energy.workload import layer_work
    from spikemfm.hardware.profiles import load_profile
    from spikemfm.ir.netlist import build_netlist

    works = layer_work(sim)
    dense_p = load_profile(rep.dense_profile or rep.profile)
    dense_ops = dense_ops_nj if dense_ops_nj is not None else {"dense": rep.dense_total["int8"] / 1e3}
    depth = neuron_depth(sim.netlist if sim.netlist is not None else build_netlist(sim.graph))
    snn = chip_system(works, load_profile(rep.profile), rep.snn_total / 1e3, rep.steps, depth, model, unit,
                      8 * kv_bytes, rep.snn_rate_part / 1e3, frame_s)
    silent = None if snn.activity is None else float(f"{snn.activity.energy_nj(0.0):.5g}")
    out = [{**snn.as_dict(), "onchip": "resident (chips)", "depth": depth, "spike_rate": rep.spike_rate,
            "silent_nj": silent}]
    whole = sum(w.weights for w in weighted(works)) + kv_bytes  # int8: one byte per weight
    for path, ops in dense_ops.items():
        for batch, onchip in systems:
            cap = onchip if onchip is not None else batch * (whole + max(w.act_elements for w in works))
            d = dense_system(works, dense_p, ops, batch, cap, kv_bytes, model, unit, frame_s=frame_s)
            d.path = path
            be = break_even(snn.activity, d.energy_nj)
            ratio = None if snn.energy_nj is None or not d.energy_nj else snn.energy_nj / d.energy_nj
            out.append({**d.as_dict(), "onchip": "whole model" if onchip is None else f"{onchip / (1 << 20):g} MiB",
                        "snn_over_dense": None if ratio is None else float(f"{ratio:.4g}"),
                        "break_even_x": None if be is None else float(f"{be:.4g}"),
                        "break_even_rate": None if be is None else float(f"{be * rep.spike_rate:.4g}")})
    return out


FIELDS = ("energy_nj", "ops_nj", "dram_nj", "static_nj", "interchip_nj", "latency_ms", "t_step_us", "silent_nj",
          "spike_rate", "snn_over_dense", "break_even_x", "break_even_rate")


def system_medians(rows: list[dict], unit: str = "nJ per generated token",
                   keys: tuple[str, ...] = ("path", "profile", "batch", "onchip"), count: str = "tokens") -> list[dict]:
    """One row per ``keys`` group of :func:`system_rows` rows (``count``: tokens, frames): the median of each
    field in ``FIELDS`` the group has (None when any of its rows lacks a value)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for group, rs in groups.items():
        row = {"model": rs[0]["model"], **dict(zip(keys, group)),
               "onchip_bytes": statistics.median(r["onchip_bytes"] for r in rs), "unit": unit, count: len(rs),
               "chips": rs[0]["chips"], "all_settled": all(r.get("settled", True) for r in rs),
               "missing": rs[0]["missing"]}
        if "realtime" in rs[0]:
            row["realtime"] = all(r["realtime"] for r in rs)
        for f in (f for f in FIELDS if f in rs[0]):
            vals = [r[f] for r in rs if r[f] is not None]
            row[f] = statistics.median(vals) if len(vals) == len(rs) else None
        out.append(row)
    return out

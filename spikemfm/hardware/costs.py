"""Primitive costs (pJ) a profile implies, each with the profile terms it needs.

Every function returns ``(pJ, missing)``: the energy, or None with the names of the terms the
profile lacks. Modelling choices (not measurements) are stated where they are made.
"""
from __future__ import annotations

from typing import Any

from spikemfm.hardware.profiles import Profile

Cost = tuple[float | None, list[str]]
_STATE_BITS = 32  # membrane / accumulator word
_EVENT_BITS = 16  # address-event word of a routed spike (assumed)


def _need(p: Profile, *names: str) -> tuple[list[float], list[str]]:
    vals = [p.pj(n) for n in names]
    return [v for v in vals if v is not None], [n for n, v in zip(names, vals) if v is None]


def _sum(p: Profile, weights: dict[str, float]) -> Cost:
    vals, missing = _need(p, *weights)
    if missing:
        return None, missing
    return sum(v * w for v, w in zip(vals, weights.values())), []


def _combine(*costs: Cost) -> Cost:
    """Sum of costs; None with every missing term if any part is unpriced."""
    missing = [m for _, miss in costs for m in miss]
    return (None, missing) if missing else (sum(v for v, _ in costs), [])


def formula(p: Profile) -> bool:
    """The standard SNN-paper formula: MACs and ACs only, memory/neurons/float units excluded."""
    return "e_mac" in p.terms


def mac(p: Profile, bits: int) -> Cost:
    """One multiply-accumulate at ``bits`` (32 = fp32). Integer b < 8: int8 multiply × (b/8)² (derived)."""
    if formula(p):
        return _sum(p, {"e_mac": 1})
    if "int8_mac" in p.terms and bits <= 8:
        return _sum(p, {"int8_mac": 1})
    if bits >= 32:
        return _sum(p, {"fp32_mult": 1, "fp32_add": 1})
    return _sum(p, {"int8_mult": (bits / 8) ** 2, "int32_add": 1})


def mem(p: Profile, bits: float, level: str) -> Cost:
    """Moving ``bits`` to/from memory ``level`` (weights: 1 MB SRAM, acts: 32 KB, state: 8 KB)."""
    if formula(p):
        return 0.0, []  # the formula ignores memory
    if "buffer_access_rel" in p.terms:  # Eyeriss-style: a global-buffer access per 8-bit word
        return _sum(p, {"buffer_access_rel": bits / 8})
    term = {"weights": "sram_1mb_64b", "acts": "sram_32kb_64b", "state": "sram_8kb_64b"}[level]
    return _sum(p, {term: bits / 64})


def synop(p: Profile, w_bits: int) -> Cost:
    """One synaptic operation: add a weight into the target's accumulator.

    Per-term 45 nm: int32 add + weight read + accumulator read and write. Loihi: its synaptic op
    (includes the synaptic memory read). TrueNorth: its all-in event energy. Formula: E_AC.
    """
    if formula(p):
        return _sum(p, {"e_ac": 1})
    for name in ("synaptic_event_allin", "synop"):
        if name in p.terms:
            return _sum(p, {name: 1})
    return _combine(_sum(p, {"int32_add": 1}), mem(p, w_bits, "weights"), mem(p, 2 * _STATE_BITS, "state"))


def product_op(p: Profile, a_bits: int) -> Cost:
    """One addition of a spike×spike product: like a synaptic op, the operand read from state memory."""
    if formula(p) or "synop" in p.terms or "synaptic_event_allin" in p.terms:
        return synop(p, a_bits)  # no spike×spike primitive on Loihi/TrueNorth: charged as a synaptic op (assumed)
    return synop_state(p, a_bits)


def graded_synop(p: Profile) -> Cost:
    """One target's share of a graded message: multiply the payload by the weight and accumulate (the
    profile's ``graded_synop``, which includes the weight read like ``synop`` does)."""
    return _sum(p, {"graded_synop": 1})


def neuromorphic(p: Profile) -> bool:
    """A spiking chip (synaptic-op or all-in event figures): no fp32 datapath, programmable cores do the rest."""
    return "synop" in p.terms or "synaptic_event_allin" in p.terms


# A float unit's work comes from its kind (spikemfm.ir.units): integer instructions per element and per row of its
# fixed-point form (what a programmable neuron core / embedded core runs; a division counts as one instruction —
# assumed; microcode divides iteratively, so this is a lower bound; per-row work is spread over the row), and fp32
# multiplies / adds per element on a dense datapath. The lookup (the spiking GELU): index, table read.
LOOKUP_INT_OPS = 2
GELU_FP32_OPS = (6, 4)  # dense path: tanh approximation, 6 multiplies + 4 adds


def int_element(p: Profile, int_ops: tuple[int, int], row: int = 0) -> Cost:
    """One element of a float unit as the integer work of its fixed-point form, on a chip's cores (``int_op``):
    ``int_ops`` = (instructions per element, per row)."""
    per_element, per_row = int_ops
    return _sum(p, {"int_op": per_element + (per_row / row if row else 0.0)})


def synop_state(p: Profile, a_bits: int) -> Cost:
    return _combine(_sum(p, {"int32_add": 1}), mem(p, a_bits + 2 * _STATE_BITS, "state"))


def neuron_update(p: Profile, active: bool) -> Cost:
    """One neuron for one step: read + write membrane, integrate and compare (two 32-bit adds)."""
    if formula(p) or "synaptic_event_allin" in p.terms:
        return 0.0, []  # ignored by the formula / included in the all-in figure
    if "neuron_update_active" in p.terms:
        return _sum(p, {"neuron_update_active" if active else "neuron_update_inactive": 1})
    return _combine(_sum(p, {"int32_add": 2}), mem(p, 2 * _STATE_BITS, "state"))


def route(p: Profile) -> Cost:
    """Routing one spike: Loihi's spike energy; else writing and reading one 16-bit address event."""
    if formula(p) or "synaptic_event_allin" in p.terms:
        return 0.0, []
    if "spike_route" in p.terms:
        return _sum(p, {"spike_route": 1})
    return mem(p, 2 * _EVENT_BITS, "state")


def float_element(p: Profile, kind: Any, row: int = 0) -> Cost:
    """One element of a float unit of ``kind`` (a :class:`~spikemfm.ir.units.base.UnitKind`, or ``"gelu"`` for the
    dense path's activation) in fp32 — the kind's assumed op counts — plus reading and writing it. On a
    neuromorphic chip: the integer work of the unit's fixed-point form (:func:`int_element`; ``row``: the length of
    the row it reduces)."""
    if formula(p):
        return 0.0, []  # the formula ignores them
    if neuromorphic(p) and kind != "gelu":  # no float datapath: the fixed-point form on the cores
        return int_element(p, kind.int_ops, row)
    mults, adds = GELU_FP32_OPS if kind == "gelu" else kind.fp32_ops
    return _combine(_sum(p, {"fp32_mult": mults, "fp32_add": adds}), mem(p, 64, "acts"))


def lookup(p: Profile, a_bits: int) -> Cost:
    """One table lookup (the spiking GELU): read an ``a_bits`` entry from a small SRAM."""
    if formula(p):
        return 0.0, []
    if neuromorphic(p):
        return int_element(p, (LOOKUP_INT_OPS, 0))
    return mem(p, a_bits, "state")

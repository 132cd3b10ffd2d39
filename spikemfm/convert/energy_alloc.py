"""Energy-aware activation bits: minimise distortion under a budget of spike-driven energy on a named profile.

An activation knob (a quantization point, i.e. a layer of IF neurons) at b bits costs, per input,

    E_k(b) = S_k(b) · Σ_c fanout_c · e_c  +  S_k(b) · e_route

where S_k(b) is what the layer sends: unit spikes Σ|level_b(x)| on unit-message profiles, messages (neurons with a
non-zero level: one graded message each) on graded ones, measured on the calibration reservoir; c runs over the
layer's consumers — a synaptic layer (fan-out = its out_features, pruned zeros included; e_c = the profile's synaptic op at the layer's
chosen weight bits, or ``graded_synop``), a spike×spike product (fan-out = products one operand element enters,
e_c = its addition) or a lookup (fan-out 1). This is the seeds' hardware-aware allocation: the levels a knob keeps
× the spikes they cost × where they go, priced by the same functions the energy report uses.

Not in E: neuron updates (every compartment every step on Loihi) and float units — they scale with the number of
steps, which the whole network's widest layer sets (T_exact, measured after conversion and reported beside the
allocation), not with a single knob. S_k counts each neuron's spikes once (a settled run); transient spikes a
layer sends and later cancels come on top, so E is the spike-driven energy's lower bound.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from spikemfm.errors import ConfigError
from spikemfm.ir.netlist import Lookup, Netlist, NeuronLayer, SpikeProduct, SynapticLayer

_SAMPLES = 1 << 16  # reservoir values per point used for the spike estimate


@dataclass(frozen=True)
class Consumer:
    """Where a neuron layer's spikes go: ``kind`` synapse | product | lookup, the consumer's ``name`` and the
    number of targets one spike (message) reaches there."""

    kind: str
    name: str
    fanout: float


def consumers(net: Netlist) -> dict[str, tuple[Consumer, ...]]:
    """Every neuron layer's consumers with their fan-out (from the traced netlist's shapes).

    A synaptic layer: out_features targets per spike. A spike product out = Σ_inner a·b: one element of operand a
    enters out.size · inner / a.size products (scores: the key tokens; context: the head width or the query
    tokens; gate: 1).
    """
    out: dict[str, list[Consumer]] = {r.name: [] for r in net.of(NeuronLayer)}
    for r in net:
        if isinstance(r, SynapticLayer):
            out[r.pre].append(Consumer("synapse", r.name, float(r.out_features)))
        elif isinstance(r, SpikeProduct):
            for src in r.inputs:
                if src in out:
                    out[src].append(Consumer("product", r.name, r.size * r.inner / net[src].size))
        elif isinstance(r, Lookup):
            for src in r.inputs:
                if src in out:
                    out[src].append(Consumer("lookup", r.name, 1.0))
    return {k: tuple(v) for k, v in out.items()}


def spike_counts(quant, values: torch.Tensor, neurons: int) -> tuple[float, float]:
    """(unit spikes, messages) per input of a layer of ``neurons`` neurons quantized by ``quant`` (an ActQuant),
    from calibration ``values`` of that point: neurons · E|level| and neurons · P(level ≠ 0)."""
    level = quant.level(values[:_SAMPLES].clone())
    return neurons * float(level.abs().mean()), neurons * float(level.ne(0).double().mean())


def _per_spike(profile, point: str, uses: tuple[Consumer, ...], bits: int, weight_bits: dict[str, int]) -> float:
    """pJ one spike (message) of ``point`` at ``bits`` costs where it goes, routing included."""
    from spikemfm.hardware import costs as C

    graded = profile.messages == "graded"
    total = []
    for c in uses:
        if graded:
            cost = C.graded_synop(profile)
        elif c.kind == "synapse":
            cost = C.synop(profile, weight_bits.get(c.name, bits))
        elif c.kind == "product":
            cost = C.product_op(profile, bits)
        else:
            cost = C.lookup(profile, bits)
        total.append((c.fanout * cost[0] if cost[0] is not None else None, cost[1]))
    total.append(C.route(profile))
    value, missing = C._combine(*total)
    if missing:
        raise ConfigError(f"MixedPrecisionConfig.energy_profile={profile.name!r} cannot price the spikes of "
                          f"{point!r}: it lacks {sorted(set(missing))}; choose a complete profile")
    return value


def knob_energy(sens, profile, weight_bits: dict[str, int]) -> dict[tuple[str, str], dict[int, float]]:
    """E_k(b) in pJ per input for every activation knob of ``sens`` and candidate b (see the module docstring)."""
    graded = profile.messages == "graded"
    out = {}
    for k in sens.knobs:
        if k.kind != "act":
            continue
        uses = sens.consumers.get(k.name, ())
        out[k.key] = {b: sens.spikes[k.name][b][1 if graded else 0] * _per_spike(profile, k.name, uses, b,
                                                                                   weight_bits)
                      for b in sens.candidates}
    return out


def layer_weight_bits(bits: dict[tuple[str, str], int]) -> dict[str, int]:
    """Chosen weight bits per Linear path (the widest of its channel groups)."""
    out: dict[str, int] = {}
    for (kind, name), b in bits.items():
        if kind == "weight":
            path = name.split("#")[0]
            out[path] = max(out.get(path, 0), b)
    return out


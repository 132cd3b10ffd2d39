"""Honest labels of what every unit of a converted SNN computes per time step.

Labels:
    spike-driven                 work happens only when an input spike arrives (accumulate / lookup)
    float-on-accumulated-input   evaluates a float function on the accumulated input every step
    analog-encoding              dense MACs on the analog input, once (the encoding layer)
    current-sum                  adds synaptic currents (residual adds, token pooling)
"""
from __future__ import annotations

from dataclasses import dataclass

from spikemfm.ir import netlist as nl
from spikemfm.ir import nodes as N
from spikemfm.ir import units

SPIKE_DRIVEN = "spike-driven"
FLOAT_ON_ACCUMULATED = "float-on-accumulated-input"
ANALOG_ENCODING = "analog-encoding"
CURRENT_SUM = "current-sum"


@dataclass(frozen=True)
class Unit:
    """One unit of the SNN: its name, kind, label and what it computes per step."""

    name: str
    kind: str
    label: str
    per_step: str


_NEURON = "integrate current, fire signed spikes, bounded count"


def _unit(r: nl.Record) -> Unit:
    """The label of one netlist record: what it really computes per time step."""
    if isinstance(r, nl.Encoding):
        return (Unit(r.name, "patch-embed", ANALOG_ENCODING, "conv on the analog image at step 1") if r.analog else
                Unit(r.name, "token-embed", CURRENT_SUM, "embedding rows injected as current at step 1"))
    if isinstance(r, nl.Constant):
        return Unit(r.name, "constant", ANALOG_ENCODING, "learned constant current (latent query) from step 1")
    if isinstance(r, nl.NeuronLayer):
        per_step = "unsigned neuron on the softmax output" if r.role.unsigned else _NEURON
        return Unit(r.name, "if-neuron", SPIKE_DRIVEN, per_step)
    if isinstance(r, nl.SynapticLayer):
        return Unit(r.name, "synapse", SPIKE_DRIVEN, "add weight column per input spike")
    if isinstance(r, nl.SpikeProduct):
        return Unit(r.name, "spike-product", SPIKE_DRIVEN, units.product_kind(r.kind).per_step)
    if isinstance(r, nl.FloatUnit):
        return Unit(r.name, r.kind, FLOAT_ON_ACCUMULATED, units.get(r.kind).per_step)
    if isinstance(r, nl.Lookup):
        return Unit(r.name, f"{r.act}-lut", SPIKE_DRIVEN,
                    f"look up {r.act}(count) when the input neuron's count changes")
    if isinstance(r, nl.ResidualAdd):
        return Unit(r.name, "residual", CURRENT_SUM, "add a synaptic current to the stream")
    if isinstance(r, nl.Pool):
        return Unit(r.name, f"pool-{r.kind}", CURRENT_SUM, "select/average token currents")
    raise TypeError(f"describe_units: no label for netlist record type {type(r).__name__}")


def describe_units(graph: N.EncoderGraph) -> list[Unit]:
    """Every unit of the SNN built from ``graph`` (its netlist's records), in execution order."""
    return [_unit(r) for r in nl.build_netlist(graph)]

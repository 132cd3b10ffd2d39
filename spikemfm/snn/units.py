"""Honest labels of what every unit of a converted SNN computes per time step.

Labels:
    spike-driven                 work happens only when an input spike arrives (accumulate / lookup)
    float-on-accumulated-input   evaluates a float function on the accumulated input every step
    analog-encoding              dense MACs on the analog input, once (the encoding layer)
    current-sum                  adds synaptic currents (residual adds, token pooling)
"""
from __future__ import annotations

from dataclasses import dataclass

from spikemfm.ir import nodes as N

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


def _block_units(b: N.Block) -> list[Unit]:
    a, m = b.attn, b.mlp
    units = [Unit(b.ln1.path, "layernorm", FLOAT_ON_ACCUMULATED, "mean/var/normalise of the accumulated stream"),
             Unit(f"{a.path}.in", "if-neuron", SPIKE_DRIVEN, "integrate current, fire signed spikes, bounded count")]
    for lin, nm in ((a.q, "q"), (a.k, "k"), (a.v, "v")):
        units += [Unit(lin.path, "synapse", SPIKE_DRIVEN, "add weight column per input spike"),
                  Unit(f"{a.path}.{nm}", "if-neuron", SPIKE_DRIVEN, "integrate current, fire signed spikes")]
    units += [
        Unit(f"{a.path}.qk", "spike-product", SPIKE_DRIVEN, "ΔQ·Kᵀ + Q·ΔKᵀ: add per spike of either train"),
        Unit(f"{a.path}.softmax", "softmax", FLOAT_ON_ACCUMULATED, "exp/normalise of accumulated scores"),
        Unit(f"{a.path}.probs", "if-neuron", SPIKE_DRIVEN, "unsigned neuron on the softmax output"),
        Unit(f"{a.path}.av", "spike-product", SPIKE_DRIVEN, "ΔA·V + A·ΔV: add per spike of either train"),
        Unit(f"{a.path}.ctx", "if-neuron", SPIKE_DRIVEN, "integrate current, fire signed spikes"),
        Unit(a.o.path, "synapse", SPIKE_DRIVEN, "add weight column per input spike"),
        Unit(f"{b.path}.residual_attn", "residual", CURRENT_SUM, "add the attention current to the stream"),
        Unit(b.ln2.path, "layernorm", FLOAT_ON_ACCUMULATED, "mean/var/normalise of the accumulated stream"),
        Unit(f"{m.path}.in", "if-neuron", SPIKE_DRIVEN, "integrate current, fire signed spikes"),
        Unit(m.fc1.path, "synapse", SPIKE_DRIVEN, "add weight column per input spike"),
        Unit(f"{m.path}.hidden", "if-neuron", SPIKE_DRIVEN, "integrate current, fire signed spikes"),
        Unit(f"{m.path}.act", f"{m.act}-lut-neuron", SPIKE_DRIVEN,
             f"look up {m.act}(count) when the input neuron's count changes; fire the difference"),
        Unit(m.fc2.path, "synapse", SPIKE_DRIVEN, "add weight column per input spike"),
        Unit(f"{b.path}.residual_mlp", "residual", CURRENT_SUM, "add the MLP current to the stream"),
    ]
    return units


def describe_units(graph: N.EncoderGraph) -> list[Unit]:
    """Every unit of the SNN built from ``graph``, in execution order."""
    e = graph.embed
    units = [Unit(e.path, "patch-embed" if isinstance(e, N.PatchEmbed) else "token-embed",
                  ANALOG_ENCODING if isinstance(e, N.PatchEmbed) else CURRENT_SUM,
                  "conv on the analog image at step 1" if isinstance(e, N.PatchEmbed)
                  else "embedding rows injected as current at step 1")]
    if e.norm is not None:
        units.append(Unit(e.norm.path, "layernorm", FLOAT_ON_ACCUMULATED, "normalise the injected embedding"))
    for b in graph.blocks:
        units += _block_units(b)
    r = graph.readout
    if r.norm is not None:
        units.append(Unit(r.norm.path, "layernorm", FLOAT_ON_ACCUMULATED, "normalise the accumulated stream"))
    units.append(Unit(f"{r.path}.pool", f"pool-{r.pool}", CURRENT_SUM, "select/average token currents"))
    if r.proj is not None:
        units += [Unit(f"{r.path}.in", "if-neuron", SPIKE_DRIVEN, "integrate current, fire signed spikes"),
                  Unit(r.proj.path, "synapse", SPIKE_DRIVEN, "add weight column per input spike")]
    return units

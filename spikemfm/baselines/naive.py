"""Naive rate-coded conversion: unsigned integrate-and-fire neurons, everything else unchanged.

spikingjelly's ``RateCodingRecipe`` (ann2snn ``Converter``) replaces ``ReLU`` by unsigned ``IFNode``s;
a GELU transformer has no ReLU, and its activations (Q, K, V, the residual stream's LayerNorm outputs)
are signed. Applying that recipe's neuron — counts in [0, hi], no negative spikes — at every
quantization point of our SNN isolates what signed neurons buy: the negative half of every signed
activation is lost. Attention probabilities (already unsigned) are unchanged.
"""
from __future__ import annotations

from dataclasses import replace

from spikemfm.quant.neurons import UnsignedIF
from spikemfm.snn.model import SpikingModel


def naive_unsigned(snn: SpikingModel) -> SpikingModel:
    """The same converted model (same QANN parameters) run with the :class:`~spikemfm.quant.neurons.UnsignedIF`
    neuron law."""
    out = SpikingModel.__new__(SpikingModel)
    out.__dict__.update(snn.__dict__)  # shares graph, parameters and the traced netlist
    out.config = replace(snn.config, neuron=UnsignedIF.name)
    return out

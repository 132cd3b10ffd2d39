"""Naive rate-coded conversion: unsigned integrate-and-fire neurons, everything else unchanged.

spikingjelly's ``RateCodingRecipe`` (ann2snn ``Converter``) replaces ``ReLU`` by unsigned ``IFNode``s;
a GELU transformer has no ReLU, and its activations (Q, K, V, the residual stream's LayerNorm outputs)
are signed. Applying that recipe's neuron — counts in [0, hi], no negative spikes — at every
quantization point of our SNN isolates what signed neurons buy: the negative half of every signed
activation is lost. Attention probabilities (already unsigned) are unchanged.
"""
from __future__ import annotations

from dataclasses import replace

from spikemfm.convert.qann import QuantizedModel
from spikemfm.quant.params import QParams
from spikemfm.snn.model import SpikingModel


def naive_unsigned(snn: SpikingModel) -> SpikingModel:
    """A copy of ``snn`` whose neurons are unsigned IF neurons (lower count bound 0)."""
    qp = snn.qparams
    quants = {k: replace(q, lo=0) for k, q in qp.quants.items()}
    # the GELU lookup is indexed by (count - lo) of the hidden neuron: re-base it on the new lower bound
    luts = {path: lut[-qp.quants[f"{path}.hidden"].lo:] for path, lut in qp.luts.items()}
    qp2 = QParams(quants, qp.linears, luts, qp.score_scales, qp.ctx_scales)
    return SpikingModel(QuantizedModel(snn.graph, qp2, snn.quant_config), snn.config)

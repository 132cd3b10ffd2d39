"""``convert``: QANN → SNN of signed integrate-and-fire neurons with spike-based attention.

Beside the runtime that runs it: :mod:`spikemfm.snn` builds on :mod:`spikemfm.convert` (the QANN), never the
other way round.
"""
from __future__ import annotations

from typing import Any

import torch

from spikemfm.convert.config import ConvertConfig
from spikemfm.convert.qann import QuantizedModel
from spikemfm.errors import ConfigError
from spikemfm.ir.netlist import Netlist, build_netlist
from spikemfm.quant.neurons import NeuronModel


class SpikingModel:
    """A converted SNN.

    Every quantizer of the QANN is a signed IF neuron (threshold = its step, bounded count), every
    Linear a synaptic layer driven by spike events, Q·Kᵀ and A·V products of two spike trains,
    GELU a lookup neuron on its input neuron's count, softmax/LayerNorm float units on accumulated
    input (see :func:`spikemfm.snn.units.describe_units`).
    ``forward(x, timesteps)`` returns the accumulated outputs (T, B, ...); :func:`spikemfm.simulate`
    also returns the spike counts. A plain object (no trainable parameters), like :class:`QuantizedModel`.
    """

    def __init__(self, qann: QuantizedModel, config: ConvertConfig) -> None:
        self.graph = qann.graph
        self.qparams = qann.qparams
        self.quant_config = qann.config
        self.config = config
        self._netlist: Netlist | None = None

    @property
    def netlist(self) -> Netlist:
        """The typed netlist of the tower (traced once, on first use)."""
        if self._netlist is None:
            self._netlist = build_netlist(self.graph)
        return self._netlist

    @property
    def neuron_model(self) -> NeuronModel:
        """The neuron law every runtime applies (:attr:`ConvertConfig.neuron`)."""
        return self.config.neuron_model

    def forward(self, x: Any, timesteps: int) -> torch.Tensor:
        from spikemfm.snn.simulate import simulate  # simulate() takes a SpikingModel: imported at call time

        return simulate(self, x, timesteps).outputs

    __call__ = forward


def convert(qann: QuantizedModel, config: ConvertConfig | None = None) -> SpikingModel:
    """Converts a QANN from :func:`spikemfm.quantize` into a :class:`SpikingModel`."""
    if not isinstance(qann, QuantizedModel):
        raise ConfigError(f"convert: expected the QuantizedModel returned by spikemfm.quantize, "
                          f"got {type(qann).__name__}; call spikemfm.quantize(model, QuantConfig(...), calib) first")
    return SpikingModel(qann, config or ConvertConfig())

"""Baselines run on the same model and data as spikemfm's SNN.

- FP32 ANN and the int8 dense QANN: ``spikemfm.quantize(model, QuantConfig(bits=8))`` run densely.
- :func:`naive_unsigned` — naive rate-coded conversion: the same SNN with unsigned IF neurons
  (no negative spikes), what a ReLU-style converter (spikingjelly's ``RateCodingRecipe``) gives a GELU
  transformer.
- :func:`sta_convert` — spikingjelly 2.0's STA transformer recipe on the same tower.
"""
from spikemfm.baselines.naive import naive_unsigned
from spikemfm.baselines.spikingjelly_sta import sta_convert, sta_outputs
from spikemfm.baselines.torch_tower import to_torch_module

__all__ = ["naive_unsigned", "sta_convert", "sta_outputs", "to_torch_module"]

"""Baselines run on the same model and data as spikemfm's SNN.

- FP32 ANN and the int8 dense QANN: ``spikemfm.quantize(model, QuantConfig(bits=8))`` run densely.
- :func:`naive_unsigned` — naive rate-coded conversion: the same SNN with unsigned IF neurons
  (no negative spikes), what a ReLU-style converter (spikingjelly's ``RateCodingRecipe``) gives a GELU
  transformer.
- :func:`sta_convert` — spikingjelly 2.0's STA transformer recipe on the same tower.
- :mod:`spikemfm.baselines.spikezip` — spikingjelly 2.0's SpikeZIP-TF recipe on a SpikeZIP QANN of the same
  tower (ReLU MLPs, quantization-aware fine-tuning).
"""
from spikemfm.baselines.naive import naive_unsigned
from spikemfm.baselines.spikezip import spikezip_convert, spikezip_outputs, spikezip_qann, spikezip_qat
from spikemfm.baselines.spikingjelly_sta import sta_convert, sta_outputs
from spikemfm.baselines.torch_tower import to_torch_module

__all__ = ["naive_unsigned", "spikezip_convert", "spikezip_outputs", "spikezip_qann", "spikezip_qat",
           "sta_convert", "sta_outputs", "to_torch_module"]

"""Compression and conversion: QANN preparation and QANN → SNN conversion."""
from spikemfm.convert.config import ConvertConfig, QuantConfig, parse_max_spikes
from spikemfm.convert.qann import QuantizedModel, quantize
from spikemfm.convert.spiking import SpikingModel, convert

__all__ = ["ConvertConfig", "QuantConfig", "QuantizedModel", "SpikingModel", "convert", "parse_max_spikes", "quantize"]

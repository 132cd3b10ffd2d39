"""Compression and conversion: QANN preparation and QANN → SNN conversion."""
from spikemfm.convert.config import ConvertConfig, QuantConfig
from spikemfm.convert.qann import QuantizedModel, quantize
from spikemfm.convert.spiking import SpikingModel, convert

__all__ = ["ConvertConfig", "QuantConfig", "QuantizedModel", "SpikingModel", "convert", "quantize"]

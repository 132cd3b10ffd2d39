"""Compression and conversion: QANN preparation and QANN → SNN conversion."""
from spikemfm.convert.config import ConvertConfig, QuantConfig, parse_max_spikes
from spikemfm.convert.mixed import BitAllocation, MixedPrecisionConfig
from spikemfm.convert.prune import GraphModel, PruneConfig, distill, prune
from spikemfm.convert.qann import Analysis, QuantizedModel, analyze, quantize
from spikemfm.convert.spiking import SpikingModel, convert

__all__ = ["Analysis", "analyze", "BitAllocation", "convert", "ConvertConfig", "distill", "GraphModel",
           "MixedPrecisionConfig", "parse_max_spikes", "prune", "PruneConfig", "QuantConfig", "quantize",
           "QuantizedModel", "SpikingModel"]

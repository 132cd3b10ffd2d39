"""Compression and conversion: QANN preparation and QANN → SNN conversion."""
from spikemfm.convert.config import ConvertConfig, QuantConfig, parse_max_spikes
from spikemfm.convert.mixed import BitAllocation, MixedPrecisionConfig
from spikemfm.convert.prune import GraphModel, PruneConfig, distill, prune
from spikemfm.convert.qann import Analysis, QuantizedModel, analyze, quantize
from spikemfm.convert.qat import QATConfig, qat

__all__ = ["Analysis", "analyze", "BitAllocation", "convert", "ConvertConfig", "distill", "GraphModel",
           "MixedPrecisionConfig", "parse_max_spikes", "prune", "PruneConfig", "qat", "QATConfig", "QuantConfig",
           "quantize",
           "QuantizedModel", "SpikingModel"]


def __getattr__(name: str):
    """``convert`` and ``SpikingModel`` live beside the runtime (:mod:`spikemfm.snn.model`), which imports this
    package; they are re-exported here on first use, so importing this package never imports the runtime."""
    if name in ("convert", "SpikingModel"):
        from spikemfm.snn import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Compression and quantization: the QANN (mixed precision, pruning, QAT). The QANN → SNN step,
:func:`spikemfm.convert` / :class:`~spikemfm.snn.model.SpikingModel`, lives beside the runtime in :mod:`spikemfm.snn`."""
from spikemfm.convert.config import ConvertConfig, QuantConfig, parse_max_spikes
from spikemfm.convert.mixed import BitAllocation, MixedPrecisionConfig
from spikemfm.convert.prune import GraphModel, PruneConfig, distill, prune
from spikemfm.convert.qann import Analysis, QuantizedModel, analyze, quantize
from spikemfm.convert.qat import QATConfig, qat

__all__ = ["Analysis", "analyze", "BitAllocation", "ConvertConfig", "distill", "GraphModel",
           "MixedPrecisionConfig", "parse_max_spikes", "prune", "PruneConfig", "qat", "QATConfig", "QuantConfig",
           "quantize",
           "QuantizedModel"]


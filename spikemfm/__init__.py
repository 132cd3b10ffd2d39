"""spikemfm: exact ANN->SNN conversion of multimodal foundation-model transformers.

Importing this package loads neither Lava nor CUDA; heavy stacks (timm, open_clip, transformers, lava)
are imported only by the functions that need them.
"""
from spikemfm.convert import (ConvertConfig, MixedPrecisionConfig, PruneConfig, QATConfig, QuantConfig, QuantizedModel,
                              distill, prune, qat, quantize)
from spikemfm.energy import EnergyReport, estimate_energy, load_profile
from spikemfm.errors import (ConfigError, DataError, FidelityError, ModelLoadError, SpikeMFMError,
                             UnsupportedModuleError)
from spikemfm.models import load
from spikemfm.neuromorphic import FixedPointConfig, Part, export_lava, export_nir
from spikemfm.snn import SimResult, SpikingModel, StreamResult, convert, simulate, simulate_stream

__version__ = "0.1.0"

__all__ = ["ConfigError", "convert", "ConvertConfig", "DataError", "distill", "EnergyReport",
           "estimate_energy", "export_lava", "export_nir", "FidelityError", "FixedPointConfig", "load", "load_profile",
           "MixedPrecisionConfig", "ModelLoadError", "Part", "prune", "PruneConfig", "QuantConfig",
           "qat", "QATConfig", "quantize", "QuantizedModel", "SimResult", "simulate", "simulate_stream", "StreamResult", "SpikeMFMError", "SpikingModel",
           "UnsupportedModuleError", "__version__"]

"""spikemfm: exact ANN->SNN conversion of multimodal foundation-model transformers.

Importing this package loads neither Lava nor CUDA; heavy stacks (timm, open_clip, transformers, lava)
are imported only by the functions that need them.
"""
from spikemfm.errors import ConfigError, DataError, ModelLoadError, SpikeMFMError, UnsupportedModuleError
from spikemfm.models import load

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "ModelLoadError", "SpikeMFMError", "UnsupportedModuleError", "load",
           "__version__"]

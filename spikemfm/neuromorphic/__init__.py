"""Neuromorphic back ends: Lava process models (floating / fixed point) and NIR export.

Importing this package does not import Lava; :func:`export_lava` does, when called.
"""
from spikemfm.neuromorphic.export import LavaNetwork, LavaRun, export_lava
from spikemfm.neuromorphic.fixed import FixedPointConfig
from spikemfm.neuromorphic.nir_export import export_nir, read_nir_layers
from spikemfm.neuromorphic.parts import Part
from spikemfm.neuromorphic.verify import Agreement, check_agreement

__all__ = ["Agreement", "FixedPointConfig", "LavaNetwork", "LavaRun", "Part", "check_agreement", "export_lava", "export_nir",
           "read_nir_layers"]

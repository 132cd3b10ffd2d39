"""A shared graph of transformer towers: nodes, extraction from timm/open_clip/HF, and the executor."""
from spikemfm.ir.engine import Inputs, as_inputs, run
from spikemfm.ir.extract import EXTRACTORS, Extractor, OpenClipTextTower, extract, extractor_for
from spikemfm.ir.fidelity import FIDELITY_RTOL, Fidelity, check_fidelity, measure_fidelity
from spikemfm.ir.float_ops import FloatOps
from spikemfm.ir.nodes import EncoderGraph

__all__ = ["EXTRACTORS", "EncoderGraph", "Extractor", "FIDELITY_RTOL", "Fidelity", "FloatOps", "Inputs",
           "OpenClipTextTower", "as_inputs", "check_fidelity", "extract", "extractor_for", "measure_fidelity", "run"]

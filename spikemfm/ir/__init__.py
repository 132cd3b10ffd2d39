"""A shared graph of transformer towers: nodes, extraction from timm/open_clip/HF, and the executor."""
from spikemfm.ir.engine import Inputs, as_inputs, run
from spikemfm.ir.extract import OpenClipTextTower, extract
from spikemfm.ir.float_ops import FloatOps
from spikemfm.ir.nodes import EncoderGraph

__all__ = ["EncoderGraph", "FloatOps", "Inputs", "OpenClipTextTower", "as_inputs", "extract", "run"]

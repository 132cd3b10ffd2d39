"""Multi-step PyTorch SNN runtime, and the converted model it runs."""
from spikemfm.snn.model import SpikingModel, convert
from spikemfm.snn.simulate import SimResult, simulate

__all__ = ["SimResult", "SpikingModel", "convert", "simulate"]

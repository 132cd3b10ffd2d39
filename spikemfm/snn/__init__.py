"""Multi-step PyTorch SNN runtime, and the converted model it runs."""
from spikemfm.snn.model import SpikingModel, convert
from spikemfm.snn.simulate import SimResult, simulate, step_ops

__all__ = ["SimResult", "SpikingModel", "convert", "simulate", "step_ops"]

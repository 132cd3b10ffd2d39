"""Multi-step PyTorch SNN runtime."""
from spikemfm.snn.simulate import SimResult, simulate

__all__ = ["SimResult", "simulate"]

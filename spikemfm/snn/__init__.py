"""Multi-step PyTorch SNN runtime, and the converted model it runs."""
from spikemfm.snn.model import SpikingModel, convert
from spikemfm.snn.simulate import SimResult, simulate, step_ops
from spikemfm.snn.stream import StreamResult, simulate_stream

__all__ = ["SimResult", "SpikingModel", "StreamResult", "convert", "simulate", "simulate_stream", "step_ops"]

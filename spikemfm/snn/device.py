"""Placing a converted model and its inputs on a device (CPU or CUDA) for :func:`~spikemfm.snn.simulate`.

The simulation runs where its tensors are: a model moved with :func:`to_device` and inputs on the same device.
On the CPU the default runtime is the step runtime with the fused numba neuron kernels; elsewhere it is the
same step runtime with the kernels in plain torch (:mod:`spikemfm.snn.kernels_torch`), which the tests hold
bit-identical to the numba kernels on the CPU. The exact-integer rules do not change with the device:
int8 × int8 → int32 GEMMs where :func:`torch._int_mm` takes the shapes (else float64, exact for int32 sums),
float32 only under the 2^24 bound, else float64 — with TF32 switched off for the run (:func:`~spikemfm.quant.exact.exact_matmuls`),
since TF32 rounds float32 operands to 10-bit mantissas.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from spikemfm.errors import ConfigError
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.quant.exact import exact_matmuls

__all__ = ["check_device", "exact_matmuls", "inputs_to", "model_device", "resolve", "to_device"]


def resolve(device: str | torch.device | None, inputs: engine.Inputs) -> torch.device:
    """The device of a run: ``device`` when given, else where the inputs are."""
    return inputs.device if device is None else check_device(device)


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device this process can use, or one :class:`ConfigError` saying why not."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device={device!r}: not a torch device ({exc}); use 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r}: CUDA is not available in this torch build / on this machine; "
                          "use device='cpu'")
    return dev


def model_device(model: Any) -> torch.device:
    """Where a QuantizedModel's / SpikingModel's integer weights live."""
    for lin in model.qparams.linears.values():
        return lin.w_int.device
    return torch.device("cpu")


def to_device(model: Any, device: str | torch.device) -> Any:
    """A shallow copy of a :class:`~spikemfm.snn.model.SpikingModel` or
    :class:`~spikemfm.convert.qann.QuantizedModel` whose graph and quantization tensors live on ``device``
    (the model itself unchanged; the same object when it is already there)."""
    dev = torch.device(device)
    if model_device(model) == dev:
        return model
    moved = copy.copy(model)
    moved.graph = N.map_tensors(model.graph, lambda t: t.to(dev))
    moved.qparams = N.map_tensors(model.qparams, lambda t: t.to(dev))
    return moved


def inputs_to(x: engine.Inputs, device: torch.device) -> engine.Inputs:
    """The same batch with every tensor on ``device``."""
    return x.map(lambda t: t.to(device))

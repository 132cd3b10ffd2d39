"""Float reference ops for :mod:`spikemfm.ir.engine`, with an optional observer for calibration."""
from __future__ import annotations

from typing import Callable

import torch

from spikemfm.ir import nodes as N
from spikemfm.ir import units
from spikemfm.ir.engine import DirectUnits
from spikemfm.ir.units.product import Product

Observer = Callable[[str, torch.Tensor], None]


class FloatOps(DirectUnits):
    """Runs the graph in floating point; ``observe(point, x)`` sees every tensor that will become spikes."""

    def __init__(self, observe: Observer | None = None) -> None:
        self.observe = observe

    def inject(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def neuron(self, point: str, x: torch.Tensor) -> torch.Tensor:
        if self.observe is not None:
            self.observe(point, x)
        return x

    def linear(self, node: N.Linear, c: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(c, node.weight.to(c.dtype),
                                          None if node.bias is None else node.bias.to(c.dtype))

    def product(self, node: Product, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return units.product_kind(node).forward(node, a, b)

    def activation(self, mlp: N.MLP, z: torch.Tensor) -> torch.Tensor:
        hidden = self.neuron(mlp.point(N.Role.HIDDEN), z)
        return self.neuron(mlp.point(N.Role.ACT), N.activation(mlp.act, hidden))

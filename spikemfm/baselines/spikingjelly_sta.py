"""spikingjelly 2.0's STA transformer recipe (``STATransformerRecipe``) on an extracted image tower.

The recipe (training-free; Spatio-Temporal Approximation) converts ``nn.Linear`` / ``nn.LayerNorm`` /
``nn.GELU`` / ``nn.MultiheadAttention`` into step-mode modules for a fixed number of time steps;
``mode="equivalent"`` keeps every operator's accumulated output equal to the ANN (not spike-driven),
``mode="spiking_encoder"`` puts calibrated spike encoders after LayerNorm, GELU and attention. The
input follows spikingjelly's own example: the image at step 1, zeros after; the output is summed
over time.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from spikemfm.baselines.torch_tower import to_torch_module
from spikemfm.ir import nodes as N

STA_MODES = ("equivalent", "spiking_encoder")


def sta_convert(graph: N.EncoderGraph, calib: Iterable[torch.Tensor], time_steps: int,
                mode: str = "spiking_encoder") -> nn.Module:
    """The tower converted by spikingjelly's STA recipe for ``time_steps`` steps (multi-step mode)."""
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.ann2snn import Converter, STATransformerRecipe

    if mode not in STA_MODES:
        raise ValueError(f"sta_convert: mode={mode!r}; spikingjelly's step-mode backend supports {STA_MODES}")
    recipe = STATransformerRecipe(dataloader=list(calib), time_steps=time_steps, mode=mode)
    snn = Converter(recipe=recipe, device="cpu").convert(to_torch_module(graph))
    functional.set_step_mode(snn, "m")
    return snn.eval()


@torch.no_grad()
def impulse_outputs(snn: nn.Module, x: torch.Tensor, time_steps: int) -> torch.Tensor:
    """Accumulated outputs (T, B, ...) of a multi-step spikingjelly model fed ``x`` at step 1 and zeros after.

    ``out[t]`` = the model's outputs summed over steps 1..t+1 (how spikingjelly's transformer recipes read out).
    """
    from spikingjelly.activation_based import functional

    functional.reset_net(snn)
    seq = torch.zeros(time_steps, *x.shape, dtype=x.dtype)
    seq[0] = x
    return snn(seq).cumsum(0)


def sta_outputs(snn: nn.Module, x: torch.Tensor, time_steps: int) -> torch.Tensor:
    """Accumulated outputs (T, B, ...) of an STA-converted tower: ``out[:t+1].sum(0)`` after each step."""
    return impulse_outputs(snn, x, time_steps)

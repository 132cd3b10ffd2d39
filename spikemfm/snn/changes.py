"""Change-driven evaluation over time: compute a unit only at the steps where its input changed.

A converted layer's accumulated input stops changing once the layers before it have settled, and its
output then stays constant. Evaluating a function only on (step, unit) pairs whose input changed and
carrying the last value forward gives exactly the per-step results at a fraction of the work; it is
what makes the simulator's cost follow spike activity rather than T.
"""
from __future__ import annotations

import math
from typing import Callable

import torch


def changed(x: torch.Tensor, unit_dims: int) -> torch.Tensor:
    """Bool (T, R): whether unit r (the trailing ``unit_dims`` dims) differs from the previous step."""
    t = x.shape[0]
    flat = x.reshape(t, -1, math.prod(x.shape[x.ndim - unit_dims:]) if unit_dims else 1)
    ch = torch.ones(t, flat.shape[1], dtype=torch.bool)
    if t > 1:
        ch[1:] = (flat[1:] != flat[:-1]).any(-1)
    return ch


def forward_fill_index(ch: torch.Tensor) -> torch.Tensor:
    """Flat index (T·R,) of the last changed step ≤ t for each (t, r)."""
    t, r = ch.shape
    last = torch.where(ch, torch.arange(t)[:, None], torch.zeros((), dtype=torch.long)).cummax(0).values
    return (last * r + torch.arange(r)[None]).flatten()


def on_changes(fn: Callable[..., torch.Tensor], xs: tuple[torch.Tensor, ...], unit_dims: int,
               ch: torch.Tensor | None = None) -> torch.Tensor:
    """Applies ``fn`` to the units (trailing ``unit_dims`` dims) of ``xs`` that changed, fills the rest.

    Args:
        fn: maps gathered units (K, *unit_i) of every input to (K, *unit_out).
        xs: inputs of shape (T, *lead, *unit_i) sharing T and lead dims.
        unit_dims: number of trailing dims forming one unit.
        ch: precomputed change mask (T, R); default: any input changed.
    """
    lead = xs[0].shape[: xs[0].ndim - unit_dims]
    if ch is None:
        ch = changed(xs[0], unit_dims)
        for x in xs[1:]:
            ch = ch | changed(x, unit_dims)
    flat_ch = ch.flatten()
    gathered = [x.reshape(-1, *x.shape[x.ndim - unit_dims:])[flat_ch] for x in xs]
    y = fn(*gathered)
    out = y.new_empty(flat_ch.numel(), *y.shape[1:])
    out[flat_ch] = y
    return out[forward_fill_index(ch)].reshape(*lead, *y.shape[1:])

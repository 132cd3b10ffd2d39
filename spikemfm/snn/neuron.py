"""Signed integrate-and-fire neurons with a bounded running spike count.

Discrete-time equations of one neuron with threshold θ (the quantization step), count bounds
[lo, hi] and at most B unit spikes per step (B = 1: binary signed spikes):

    V[0] = θ/2,  c[0] = 0
    V'     = V[t−1] + I[t]                                  (integrate the input current)
    n[t]   = clip(⌊V'/θ⌋, −B, B) restricted so that lo ≤ c[t−1] + n[t] ≤ hi
    V[t]   = V' − n[t]·θ,   c[t] = c[t−1] + n[t]           (fire n[t] spikes of sign(n[t]))

With S[t] = Σ I the accumulated input, V' − θ/2 = S[t] − c[t−1]·θ, so the neuron fires toward
level(S[t]) = clamp(⌊S[t]/θ + ½⌋, lo, hi) and stops there: c[t] = c[t−1] + clip(level − c[t−1], −B, B).
:func:`bounded_follow` simulates that closed form (no drift from repeated float subtraction);
:func:`if_membrane_reference` simulates the membrane recurrence literally, for tests.
"""
from __future__ import annotations

import math

import torch


def bounded_follow(target: torch.Tensor, max_step: int | None) -> torch.Tensor:
    """Running counts c[t] (T, ...) moving toward integer ``target[t]`` by at most ``max_step`` per step.

    The closed form of the neuron over a whole spike train; the runtime (``SNNStepOps``) applies the
    same update one step at a time.
    """
    if max_step is None:
        return target.clone()
    out = torch.empty_like(target)
    c = torch.zeros_like(target[0])
    for t in range(target.shape[0]):
        c = c + torch.clamp(target[t] - c, -max_step, max_step)
        out[t] = c
    return out


def if_membrane_reference(current: list[float], theta: float, lo: int, hi: int,
                          max_step: int | None = 1) -> list[int]:
    """Literal membrane simulation of one signed IF neuron; returns the signed spikes per step."""
    v, c, spikes = theta / 2.0, 0, []
    bound = math.inf if max_step is None else max_step
    for i in current:
        if not math.isfinite(i):
            raise ValueError(f"if_membrane_reference: input current {i!r} is not finite")
        v += i
        n = int(max(-bound, min(bound, math.floor(v / theta))))
        n = max(lo - c, min(hi - c, n))
        v -= n * theta
        c += n
        spikes.append(n)
    return spikes

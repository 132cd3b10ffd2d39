"""Lava Processes of the spiking transformer blocks: ports and Vars only (models in ``models.py``).

Message convention: neurons send signed spikes (graded: the number of unit spikes fired this step,
bounded by the neuron's per-step limit). Every other stage sends the *accumulated* graded value
it holds (synaptic current, product, LayerNorm / softmax output, residual stream) — on Loihi 2 that
is the dendritic accumulator the next compartment reads. All stages receive before they send, so a
spike crosses every stage within the step it was fired in, like :func:`spikemfm.simulate`.

Parameters that are not state (thresholds, scales, lookup tables, masks) travel in ``proc_params``;
every process carries both its float and its fixed-point parameters, the run's tag picks the model.
``probe`` (a file path) and ``steps`` make a process write its per-step output there after the last
step: ``Var.get`` moves ~100k elements/s, too slow to read spike histories.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

Shape = tuple[int, ...]


class SignedIF(AbstractProcess):
    """Signed integrate-and-fire neurons with a bounded running count.

    Float: c ← c + clip(clamp(⌊x/step + ½⌋, lo, hi) − c, −B, B) on the accumulated input x.
    Fixed: V₀ = ⌊θ/2⌋;  V ← V + Δx;  n = clip(⌊V/θ⌋, −B, B) ∩ [lo − c, hi − c];  V ← V − nθ;  c ← c + n.
    """

    def __init__(self, *, shape: Shape, step: float, theta: int, lo: int, hi: int, max_spikes: int | None,
                 probe: str | None = None, steps: int = 0, name: str | None = None) -> None:
        super().__init__(shape=shape, step=step, theta=theta, lo=lo, hi=hi, max_spikes=max_spikes, probe=probe,
                         steps=steps, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.count = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=theta // 2)
        self.x_prev = Var(shape=shape, init=0)


class LutIF(AbstractProcess):
    """A neuron whose count follows ``lut[c_in − lo_in]`` of its input neuron's count c_in (GELU).

    c_in ← c_in + s_in;  c ← c + clip(lut[c_in − lo_in] − c, −B, B).
    """

    def __init__(self, *, shape: Shape, lut: np.ndarray, lo_in: int, max_spikes: int | None,
                 probe: str | None = None, steps: int = 0, name: str | None = None) -> None:
        super().__init__(shape=shape, lut=lut, lo_in=lo_in, max_spikes=max_spikes, probe=probe, steps=steps,
                         name=name)
        self.s_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.in_count = Var(shape=shape, init=0)
        self.count = Var(shape=shape, init=0)


class SpikeSynapse(AbstractProcess):
    """Event-driven synaptic layer: acc ← acc + s_in · W_intᵀ; sends the current from acc.

    Float: y = acc · out_scale + bias.  Fixed: y = (acc · gain + offset) >> G.
    """

    def __init__(self, *, in_shape: Shape, weights: np.ndarray, out_scale: np.ndarray, bias: np.ndarray | None,
                 gain: np.ndarray, offset: np.ndarray, gain_shift: int, name: str | None = None) -> None:
        out_shape = (*in_shape[:-1], weights.shape[0])
        super().__init__(out_scale=out_scale, bias=bias, gain=gain, offset=offset, gain_shift=gain_shift,
                         name=name)
        self.s_in = InPort(shape=in_shape)
        self.a_out = OutPort(shape=out_shape)
        self.weights = Var(shape=weights.shape, init=weights)
        self.acc = Var(shape=out_shape, init=0)


class SpikeProduct(AbstractProcess):
    """Product of two spike trains per head: Q·Kᵀ (``kind="qk"``) or A·V (``kind="av"``).

    With running counts A, B: acc ← acc + ΔA·B_{t−1} + A_t·ΔB (additions per spike event);
    Float: y = acc · scale.  Fixed: y = (acc · gain) >> G.
    qk: a_in, b_in (batch, N, D) → (batch, H, N, N).  av: a_in (batch, H, N, N), b_in (batch, N, D) → (batch, N, D).
    """

    def __init__(self, *, kind: str, a_shape: Shape, b_shape: Shape, out_shape: Shape, heads: int, scale: float,
                 gain: int, gain_shift: int, name: str | None = None) -> None:
        super().__init__(kind=kind, heads=heads, scale=scale, gain=gain, gain_shift=gain_shift, name=name)
        self.a_in = InPort(shape=a_shape)
        self.b_in = InPort(shape=b_shape)
        self.a_out = OutPort(shape=out_shape)
        self.a_count = Var(shape=a_shape, init=0)
        self.b_count = Var(shape=b_shape, init=0)


class Softmax(AbstractProcess):
    """Masked softmax over the last axis of accumulated scores (float unit / integer LUT softmax)."""

    def __init__(self, *, shape: Shape, mask: np.ndarray | None, exp_lut: np.ndarray, log2e: int, frac_bits: int,
                 name: str | None = None) -> None:
        super().__init__(mask=mask, exp_lut=exp_lut, log2e=log2e, frac_bits=frac_bits, name=name)
        self.a_in = InPort(shape=shape)
        self.a_out = OutPort(shape=shape)


class LayerNormUnit(AbstractProcess):
    """LayerNorm over the last axis of the accumulated input (float unit / integer LayerNorm)."""

    def __init__(self, *, shape: Shape, weight: np.ndarray, bias: np.ndarray, eps: float, w_fx: np.ndarray,
                 b_fx: np.ndarray, eps_fx: int, name: str | None = None) -> None:
        super().__init__(weight=weight, bias=bias, eps=eps, w_fx=w_fx, b_fx=b_fx, eps_fx=eps_fx, name=name)
        self.a_in = InPort(shape=shape)
        self.a_out = OutPort(shape=shape)


class ResidualAdd(AbstractProcess):
    """Residual add of two accumulated currents: y = a + b."""

    def __init__(self, *, shape: Shape, name: str | None = None) -> None:
        super().__init__(name=name)
        self.a_in = InPort(shape=shape)
        self.b_in = InPort(shape=shape)
        self.a_out = OutPort(shape=shape)


class FloatUnit(AbstractProcess):
    """A float unit of any registered kind (:mod:`spikemfm.ir.units`) on the accumulated input: the floating-point
    model runs the kind's float function, the fixed-point model its integer form on Q.F values."""

    def __init__(self, *, shape: Shape, kind: str, node: object, params: dict, frac_bits: int,
                 name: str | None = None) -> None:
        super().__init__(kind=kind, node=node, params=params, frac_bits=frac_bits, name=name)
        self.a_in = InPort(shape=shape)
        self.a_out = OutPort(shape=shape)


class TokenPool(AbstractProcess):
    """Token pooling of the accumulated stream (:func:`spikemfm.ir.units.pool.pool_tokens`): ``kind`` with the
    readout's ``prefix_tokens`` / ``eos_id`` and the batch's token ``ids`` and attention ``mask`` (or None)."""

    def __init__(self, *, in_shape: Shape, kind: str, prefix_tokens: int, eos_id: int | None,
                 ids: np.ndarray | None, mask: np.ndarray | None, name: str | None = None) -> None:
        super().__init__(kind=kind, prefix_tokens=prefix_tokens, eos_id=eos_id, ids=ids, mask=mask, name=name)
        self.a_in = InPort(shape=in_shape)
        width = in_shape[-1] * (prefix_tokens if kind == "concat_prefix" else 1)
        self.a_out = OutPort(shape=(in_shape[0], width))


class StreamProbe(AbstractProcess):
    """Sink that keeps every received message and writes them (steps, *shape) to ``probe`` at the end."""

    def __init__(self, *, shape: Shape, probe: str, steps: int, name: str | None = None) -> None:
        super().__init__(probe=probe, steps=steps, name=name)
        self.a_in = InPort(shape=shape)


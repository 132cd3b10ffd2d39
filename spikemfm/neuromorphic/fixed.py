"""Bit-accurate fixed-point semantics of a converted SNN, and its integer reference in PyTorch.

The fixed-point variant is what an integer neuromorphic core (Loihi 2 microcode neurons) would run.
Every graded value between stages — the residual stream, synaptic currents, LayerNorm / softmax
outputs, attention scores — is an integer in Q.F (value = integer · 2^−F, F = ``frac_bits``);
spikes are signed integer counts. Parameters are derived once from the float QANN:

    neuron threshold   θ = round(step · 2^F)               (integer IF: V₀ = ⌊θ/2⌋, V −= n·θ)
    synaptic current   y = (acc · g + β) >> G,  g = round(out_scale · 2^(F+G)),  β = round(bias · 2^(F+G))
    scores / context   y = (acc · g) >> G                   (acc: exact integer spike×spike product)
    float units        each kind's integer form (:meth:`spikemfm.ir.units.base.UnitKind.fixed`: LayerNorm,
                       RoPE, softmax, … — the equations are in each kind's module)
    pooling            :func:`spikemfm.ir.units.pool.pool_tokens` with floor division
    GELU               the QANN's integer lookup table (already integer)

``>>`` is an arithmetic (floor) shift and ⌊·⌋ floor division. The Lava ``fixed_pt`` models
(:mod:`spikemfm.neuromorphic.lava.models`) implement the same equations independently in NumPy;
:class:`FixedStepOps` here is the PyTorch reference they are checked against bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from spikemfm.core.checks import check_field_types
from spikemfm.quant.neurons import NeuronModel, SignedIF
from spikemfm.quant.params import QParams
from spikemfm.errors import ConfigError
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.ir import units
from spikemfm.ir.units.base import round_int
from spikemfm.ir.netlist import FloatUnit, Netlist, SpikeProduct, build_netlist
from spikemfm.ir.units.pool import pool_tokens
from spikemfm.ir.units.product import Product
from spikemfm.ir.units.softmax import Softmax


@dataclass(frozen=True)
class FixedPointConfig:
    """Number formats of the fixed-point variant.

    Attributes:
        frac_bits: F, fractional bits of every graded value (Q.F).
        gain_shift: G, extra fractional bits of the synaptic gains g (the shift after the multiply).
        value_bits: declared signed precision of graded values and messages; the reference raises
            when a value needs more.
    """

    frac_bits: int = 16
    gain_shift: int = 16
    value_bits: int = 24

    def __post_init__(self) -> None:
        check_field_types(self)
        for name, lo, hi in (("frac_bits", 4, 24), ("gain_shift", 0, 24), ("value_bits", 8, 32)):
            v = getattr(self, name)
            if not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"FixedPointConfig.{name}={v!r}: must be an integer in [{lo}, {hi}]")


@dataclass
class FixedParams:
    """Integer parameters of every stage, keyed like :class:`~spikemfm.convert.qann.QParams`."""

    cfg: FixedPointConfig
    theta: dict[str, int] = field(default_factory=dict)
    gain: dict[str, torch.Tensor] = field(default_factory=dict)
    offset: dict[str, torch.Tensor] = field(default_factory=dict)
    units: dict[str, dict[str, Any]] = field(default_factory=dict)  # float unit path -> its kind's integer params

    def to_fixed(self, x: torch.Tensor) -> torch.Tensor:
        """A float value tensor in Q.F."""
        return round_int(x * 2.0 ** self.cfg.frac_bits)

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """A Q.F tensor as float64 values."""
        return x.to(torch.float64) / 2.0 ** self.cfg.frac_bits

    def unit_params(self, node: Any) -> dict[str, Any]:
        """The integer parameters of a float unit (derived on first use: softmax nodes are made per call)."""
        params = self.units.get(node.path)
        if params is None:
            params = self.units[node.path] = units.kind_of(node).fixed_params(node, self.cfg.frac_bits)
        return params


def fixed_params(graph: N.EncoderGraph, qp: QParams, cfg: FixedPointConfig, net: Netlist | None = None) -> FixedParams:
    """Derives every integer parameter of the fixed-point variant from a QANN's parameters, walking the graph's
    netlist (``net``, or traced here)."""
    fxp = FixedParams(cfg)
    f, g = cfg.frac_bits, cfg.gain_shift
    for point, q in qp.quants.items():
        theta = int(round(q.step * 2.0 ** f))
        if theta < 2:
            raise ConfigError(f"fixed point: the threshold of {point} (step {q.step:.3g}) is below 2 units of "
                              f"2^-{f}; raise FixedPointConfig.frac_bits")
        fxp.theta[point] = theta
    for path, ql in qp.linears.items():
        fxp.gain[path] = round_int(ql.out_scale * 2.0 ** (f + g))
        bias = ql.bias if ql.bias is not None else torch.zeros_like(ql.out_scale)
        fxp.offset[path] = round_int(bias * 2.0 ** (f + g))
    for rec in (net or build_netlist(graph)):  # the netlist is the plan: products and float units from its records
        if isinstance(rec, SpikeProduct):
            scales = getattr(qp, units.product_kind(rec.kind).scales)
            if rec.owner in scales:  # a QParams without it (unit tests of single stages) needs no gain
                fxp.gain[rec.name] = round_int(scales[rec.owner] * 2.0 ** (f + g))
        elif isinstance(rec, FloatUnit):
            fxp.unit_params(rec.node)
    return fxp


class FixedStepOps:
    """Engine ops of the fixed-point SNN, one time step per engine run (the integer reference).

    Values are int64 Q.F tensors, counts int64. Neurons follow the integer IF closed form
    c ← c + clip(clamp(⌊(x + ⌊θ/2⌋)/θ⌋, lo, hi) − c, −B, B).
    """

    def __init__(self, qp: QParams, fxp: FixedParams, max_spikes: int | None, law: NeuronModel = SignedIF()) -> None:
        self.qp, self.fxp, self.max_spikes, self.law = qp, fxp, max_spikes, law
        self.counts: dict[str, torch.Tensor] = {}
        self.head_major: set[str] = set()  # qk-norm operands: counts kept as (..., H, N, d)
        self.limit = 2 ** (fxp.cfg.value_bits - 1)

    def layer_counts(self) -> dict[str, torch.Tensor]:
        """Every neuron layer's running counts (engine layout (..., N, D))."""
        return {k: engine.merge_heads(v) if k in self.head_major else v for k, v in self.counts.items()}

    def next_step(self) -> None:
        """Nothing to reset: every stage recomputes from the accumulated counts."""

    def _check(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if x.numel() and int(x.abs().max()) >= self.limit:
            raise ConfigError(f"fixed point: {name} needs more than the declared {self.fxp.cfg.value_bits} bits "
                              f"(max |x| = {int(x.abs().max())}); lower FixedPointConfig.frac_bits or raise value_bits")
        return x

    def inject(self, x: torch.Tensor) -> torch.Tensor:
        return self._check("input", x)

    def constant(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """A learned constant current (float, computed once) in Q.F."""
        return self._check(name, self.fxp.to_fixed(x))

    def _move(self, point: str, target: torch.Tensor) -> torch.Tensor:
        prev = self.counts.get(point, torch.zeros_like(target))
        delta = target - prev
        if self.max_spikes is not None:
            delta = delta.clamp(-self.max_spikes, self.max_spikes)
        self.counts[point] = prev + delta
        return self.counts[point]

    def neuron(self, point: str, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.law.bounds(self.qp.quants[point])
        theta = self.fxp.theta[point]
        if engine.head_major(point, x):
            self.head_major.add(point)
        target = torch.div(x + theta // 2, theta, rounding_mode="floor").clamp(lo, hi)
        return self._move(point, target)

    def linear(self, node: N.Linear, c: torch.Tensor) -> torch.Tensor:
        acc = c @ self.qp.linears[node.path].w_int.to(torch.int64).T
        y = (acc * self.fxp.gain[node.path] + self.fxp.offset[node.path]) >> self.fxp.cfg.gain_shift
        return self._check(node.path, y)

    def product(self, node: Product, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """y = (A·B · g) >> G on the integer counts (A·B exact)."""
        kind = units.product_kind(node)
        acc = kind.combine(*kind.operands(a, b))
        return self._check(node.path, (acc * self.fxp.gain[node.path]) >> self.fxp.cfg.gain_shift)

    def activation(self, mlp: N.MLP, z: torch.Tensor) -> torch.Tensor:
        c = self.neuron(mlp.point(N.Role.HIDDEN), z)
        lut = self.law.clamp_levels(self.qp.quants[mlp.point(N.Role.ACT)], self.qp.luts[mlp.path]).to(torch.int64)
        return self._move(mlp.point(N.Role.ACT), lut[c - self.qp.quants[mlp.point(N.Role.HIDDEN)].lo])

    def unit(self, node: Any, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """A float unit's integer form (its kind's :meth:`~spikemfm.ir.units.base.UnitKind.fixed`)."""
        y = units.kind_of(node).fixed(node, self.fxp.unit_params(node), x, mask, self.fxp.cfg.frac_bits)
        return y if isinstance(node, Softmax) else self._check(node.path, y)  # probabilities are ≤ 2^F

    def pool(self, r: N.Readout, x: torch.Tensor, inputs: engine.Inputs) -> torch.Tensor:
        """Integer token pooling (floor division for the means)."""
        return pool_tokens(x, r.pool, r.prefix_tokens, r.eos_id, inputs.ids, inputs.mask, integer=True)

"""Bit-accurate fixed-point semantics of a converted SNN, and its integer reference in PyTorch.

The fixed-point variant is what an integer neuromorphic core (Loihi 2 microcode neurons) would run.
Every graded value between stages — the residual stream, synaptic currents, LayerNorm / softmax
outputs, attention scores — is an integer in Q.F (value = integer · 2^−F, F = ``frac_bits``);
spikes are signed integer counts. Parameters are derived once from the float QANN:

    neuron threshold   θ = round(step · 2^F)               (integer IF: V₀ = ⌊θ/2⌋, V −= n·θ)
    synaptic current   y = (acc · g + β) >> G,  g = round(out_scale · 2^(F+G)),  β = round(bias · 2^(F+G))
    scores / context   y = (acc · g) >> G                   (acc: exact integer spike×spike product)
    RoPE               y = (x · round(cos · 2^F) + rot(x) · round(sin · 2^F)) >> F
    LayerNorm          m = ⌊Σx / D⌋, d = x − m, σ = isqrt(⌊Σd² / D⌋ + round(eps · 2^2F)),
                       y = ⌊d · round(w · 2^F) / σ⌋ + round(b · 2^F)
    softmax            z = s − max(s), t = (z · round(log2(e) · 2^F)) >> F, k = t >> F, r = t − k·2^F,
                       e = LUT[r] >> −k  (LUT[r] = round(2^(r/2^F) · 2^F)),  p = ⌊e · 2^F / Σe⌋
    GELU               the QANN's integer lookup table (already integer)

``>>`` is an arithmetic (floor) shift and ⌊·⌋ floor division. The Lava ``fixed_pt`` models
(:mod:`spikemfm.neuromorphic.lava.models`) implement the same equations independently in NumPy;
:class:`FixedStepOps` here is the PyTorch reference they are checked against bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from spikemfm.core.checks import check_field_types
from spikemfm.quant.neurons import NeuronModel, SignedIF
from spikemfm.quant.params import QParams
from spikemfm.errors import ConfigError
from spikemfm.ir import engine
from spikemfm.ir import nodes as N


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


def _round_int(x: torch.Tensor | float) -> torch.Tensor:
    return torch.round(torch.as_tensor(x, dtype=torch.float64)).to(torch.int64)


@dataclass
class FixedParams:
    """Integer parameters of every stage, keyed like :class:`~spikemfm.convert.qann.QParams`."""

    cfg: FixedPointConfig
    theta: dict[str, int] = field(default_factory=dict)
    gain: dict[str, torch.Tensor] = field(default_factory=dict)
    offset: dict[str, torch.Tensor] = field(default_factory=dict)
    norm_w: dict[str, torch.Tensor] = field(default_factory=dict)
    norm_b: dict[str, torch.Tensor] = field(default_factory=dict)
    norm_eps: dict[str, int] = field(default_factory=dict)
    rope: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # path -> (sin, cos) in Q.F
    exp_lut: torch.Tensor | None = None
    log2e: int = 0

    def to_fixed(self, x: torch.Tensor) -> torch.Tensor:
        """A float value tensor in Q.F."""
        return _round_int(x * 2.0 ** self.cfg.frac_bits)

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """A Q.F tensor as float64 values."""
        return x.to(torch.float64) / 2.0 ** self.cfg.frac_bits


def _add_norm(fxp: FixedParams, node: N.LayerNorm) -> None:
    f = fxp.cfg.frac_bits
    fxp.norm_w[node.path] = _round_int(node.weight.to(torch.float64) * 2.0 ** f)
    fxp.norm_b[node.path] = _round_int(node.bias.to(torch.float64) * 2.0 ** f)
    fxp.norm_eps[node.path] = max(1, int(round(node.eps * 2.0 ** (2 * f))))


def fixed_params(graph: N.EncoderGraph, qp: QParams, cfg: FixedPointConfig) -> FixedParams:
    """Derives every integer parameter of the fixed-point variant from a QANN's parameters."""
    fxp = FixedParams(cfg)
    f, g = cfg.frac_bits, cfg.gain_shift
    for point, q in qp.quants.items():
        theta = int(round(q.step * 2.0 ** f))
        if theta < 2:
            raise ConfigError(f"fixed point: the threshold of {point} (step {q.step:.3g}) is below 2 units of "
                              f"2^-{f}; raise FixedPointConfig.frac_bits")
        fxp.theta[point] = theta
    for path, ql in qp.linears.items():
        fxp.gain[path] = _round_int(ql.out_scale * 2.0 ** (f + g))
        bias = ql.bias if ql.bias is not None else torch.zeros_like(ql.out_scale)
        fxp.offset[path] = _round_int(bias * 2.0 ** (f + g))
    for attn in (a for a in N.find_nodes(graph, N.Attention) if a.path in qp.score_scales):
        fxp.gain[attn.scores_name] = _round_int(qp.score_scales[attn.path] * 2.0 ** (f + g))
        fxp.gain[attn.context_name] = _round_int(qp.ctx_scales[attn.path] * 2.0 ** (f + g))
    for m in (m for m in N.find_nodes(graph, N.MLP) if m.gate is not None and m.path in qp.ctx_scales):
        fxp.gain[m.gate_name] = _round_int(qp.ctx_scales[m.path] * 2.0 ** (f + g))
    for node in N.find_nodes(graph, N.LayerNorm):
        _add_norm(fxp, node)
    for node in N.find_nodes(graph, N.Rope):
        fxp.rope[node.path] = (_round_int(node.sin.to(torch.float64) * 2.0 ** f),
                               _round_int(node.cos.to(torch.float64) * 2.0 ** f))
    fxp.exp_lut = _round_int(torch.exp2(torch.arange(2 ** f, dtype=torch.float64) / 2 ** f) * 2.0 ** f)
    fxp.log2e = int(round(math.log2(math.e) * 2 ** f))
    return fxp


def isqrt(n: torch.Tensor) -> torch.Tensor:
    """⌊√n⌋ of non-negative int64 tensors (float estimate, then corrected to the exact integer root)."""
    r = torch.sqrt(n.to(torch.float64)).floor().to(torch.int64)
    r = torch.where(r * r > n, r - 1, r)
    return torch.where((r + 1) * (r + 1) <= n, r + 1, r)


def fixed_layer_norm(fxp: FixedParams, path: str, x: torch.Tensor) -> torch.Tensor:
    """Integer LayerNorm over the last axis (see the module docstring)."""
    d = x - torch.div(x.sum(-1, keepdim=True), x.shape[-1], rounding_mode="floor")
    var = torch.div((d * d).sum(-1, keepdim=True), x.shape[-1], rounding_mode="floor")
    sigma = isqrt(var + fxp.norm_eps[path])
    return torch.div(d * fxp.norm_w[path], sigma, rounding_mode="floor") + fxp.norm_b[path]


def fixed_rope(fxp: FixedParams, node: N.Rope, x: torch.Tensor) -> torch.Tensor:
    """Integer RoPE: y = (x·cos + rot(x)·sin) >> F on the rotated tokens (tables in Q.F)."""
    sin, cos = fxp.rope[node.path]
    head, tail = x[..., :node.prefix, :], x[..., node.prefix:, :]
    out = (tail * cos + engine.rotate(tail, node.half) * sin) >> fxp.cfg.frac_bits
    return torch.cat([head, out], dim=-2)


def fixed_softmax(fxp: FixedParams, s: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Integer softmax over the last axis with blocked pairs (``mask`` True) at probability 0."""
    f = fxp.cfg.frac_bits
    blocked = torch.zeros_like(s, dtype=torch.bool) if mask is None else mask.expand_as(s)
    floor = torch.iinfo(torch.int64).min // 4
    top = torch.where(blocked, floor, s).amax(-1, keepdim=True)
    t = (torch.where(blocked, 0, s - top) * fxp.log2e) >> f
    k = t >> f
    e = fxp.exp_lut[t - (k << f)] >> (-k).clamp(0, 62)
    e = torch.where(blocked, 0, e)
    return torch.div(e << f, e.sum(-1, keepdim=True).clamp_min(1), rounding_mode="floor")


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

    def scores(self, attn: N.Attention, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        acc = q @ k.transpose(-1, -2)
        return self._check(attn.scores_name, (acc * self.fxp.gain[attn.scores_name]) >> self.fxp.cfg.gain_shift)

    def context(self, attn: N.Attention, p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        acc = p @ v
        return self._check(attn.context_name, (acc * self.fxp.gain[attn.context_name]) >> self.fxp.cfg.gain_shift)

    def gate(self, mlp: N.MLP, g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        acc = g * v
        return self._check(mlp.gate_name, (acc * self.fxp.gain[mlp.gate_name]) >> self.fxp.cfg.gain_shift)

    def activation(self, mlp: N.MLP, z: torch.Tensor) -> torch.Tensor:
        c = self.neuron(mlp.point(N.Role.HIDDEN), z)
        lut = self.law.clamp_levels(self.qp.quants[mlp.point(N.Role.ACT)], self.qp.luts[mlp.path]).to(torch.int64)
        return self._move(mlp.point(N.Role.ACT), lut[c - self.qp.quants[mlp.point(N.Role.HIDDEN)].lo])

    def norm(self, node: N.LayerNorm | N.Rope, x: torch.Tensor) -> torch.Tensor:
        if isinstance(node, N.Rope):
            return self._check(node.path, fixed_rope(self.fxp, node, x))
        return self._check(node.path, fixed_layer_norm(self.fxp, node.path, x))

    def softmax(self, attn: N.Attention, s: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return fixed_softmax(self.fxp, s, mask)


def fixed_pool(r: N.Readout, x: torch.Tensor, inputs: engine.Inputs) -> torch.Tensor:
    """Integer token pooling (floor division for the means)."""
    if r.pool in ("cls", "last", "eot", "concat_prefix"):  # selections: exact on integers as they are
        return engine.pool(r, x, inputs)
    if r.pool == "avg_tokens":
        return torch.div(x[..., r.prefix_tokens:, :].sum(-2), x.shape[-2] - r.prefix_tokens, rounding_mode="floor")
    m = (inputs.mask if inputs.mask is not None else torch.ones_like(inputs.ids)).to(torch.int64)[..., None]
    return torch.div((x * m).sum(-2), m.sum(-2).clamp_min(1), rounding_mode="floor")

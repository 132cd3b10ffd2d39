"""The typed spiking netlist of a converted tower: every unit the SNN runs, with explicit edges.

Derived once, by running the one forward definition (:mod:`spikemfm.ir.engine`) with a tracing ops object on a
batch of one input, so it cannot drift from what the QANN, the runtimes and the exporters execute. Each record
names its inputs; consumers iterate records and follow edges instead of re-deriving the structure from point
names. Per time step t (the SNN's discrete-time view):

- :class:`Encoding`   x⁰ = embed(input), injected as current at t = 1 (analog for images, rows for tokens).
- :class:`Constant`   a learned constant current from t = 1 on (the latent query of attention pooling).
- :class:`NeuronLayer` signed (unsigned for probabilities) bounded integrate-and-fire: v[t] = v[t−1] + I[t] − θ·s[t],
  s[t] moves the count toward ⌊Σ I / θ + ½⌋ (at most ``max_spikes`` per step); ``role`` says what it carries.
- :class:`SynapticLayer` I[t] = W_int · s_pre[t] · scale (+ bias once): ``pre`` is its presynaptic neuron layer.
- :class:`SpikeProduct` P[t] = A[t]·B[t] − A[t−1]·B[t−1] of two spike counts: :class:`ScoresProduct` (Q·Kᵀ),
  :class:`ContextProduct` (A·V), :class:`GateProduct` (gate ⊙ value).
- :class:`FloatUnit`  y[t] = f(Σ inputs up to t): a float unit on accumulated input, of the kind registered for its
  ``node`` (:mod:`spikemfm.ir.units`: softmax, LayerNorm, RoPE, …).
- :class:`Lookup`     c_out[t] = LUT[c_in[t]]: the MLP nonlinearity on its input neuron's count.
- :class:`ResidualAdd` I[t] = I_a[t] + I_b[t]; :class:`Pool` token selection / mean of currents.

Shapes exclude the batch and are those of the traced input (``Netlist.tokens`` tokens). Records that evaluate a
node carry it (``node``: its parameters), so a backend reads everything it builds from the records.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, TypeVar

import torch

from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.ir import units
from spikemfm.ir.float_ops import FloatOps
from spikemfm.ir.units.product import Product

_NODE = dict(default=None, compare=False, repr=False)  # the node a record evaluates (its parameters)


@dataclass(frozen=True)
class Record:
    """A netlist node: unique ``name``, ``inputs`` (names of the records feeding it), ``shape`` per input."""

    name: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Elements per input (neurons, currents, scores)."""
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Encoding(Record):
    """The encoding layer (patch embedding of the analog image, or token-embedding rows); ``analog`` for images."""

    analog: bool


@dataclass(frozen=True)
class Constant(Record):
    """A learned constant current computed once at step 1 and held (attention pooling's latent query
    q = latent·W_qᵀ + b: ``fan_in`` multiply-accumulates per element, in float, like the encoding)."""

    fan_in: int


@dataclass(frozen=True)
class NeuronLayer(Record):
    """A layer of IF neurons at a quantization point; ``name`` is its :class:`~spikemfm.ir.nodes.Point`."""

    @property
    def point(self) -> N.Point:
        assert isinstance(self.name, N.Point)  # set by the tracer
        return self.name

    @property
    def role(self) -> N.Role:
        """What the layer carries."""
        return self.point.role

    @property
    def owner(self) -> str:
        """The attention / MLP / readout the layer belongs to."""
        return self.point.owner


@dataclass(frozen=True)
class SynapticLayer(Record):
    """A Linear driven by the spikes of neuron layer ``pre`` (= inputs[0]); ``in_features`` → ``out_features``."""

    in_features: int
    out_features: int
    node: N.Linear | None = field(**_NODE)

    @property
    def pre(self) -> str:
        return self.inputs[0]


@dataclass(frozen=True)
class SpikeProduct(Record):
    """A product of two spike trains of ``owner`` (the attention or gated MLP ``node``); ``inner`` the summed length."""

    kind: ClassVar[str]
    owner: str
    heads: int
    inner: int
    node: N.Attention | N.MLP | None = field(**_NODE)


@dataclass(frozen=True)
class ScoresProduct(SpikeProduct):
    """Q·Kᵀ of attention ``owner`` (H, queries, keys); ``inner`` the head size."""

    kind = "scores"


@dataclass(frozen=True)
class ContextProduct(SpikeProduct):
    """A·V of attention ``owner`` (H, queries, head size); ``inner`` the number of keys."""

    kind = "context"


@dataclass(frozen=True)
class GateProduct(SpikeProduct):
    """act(gate) ⊙ value of gated MLP ``owner``, elementwise (``heads`` = ``inner`` = 1)."""

    kind = "gate"


@dataclass(frozen=True)
class FloatUnit(Record):
    """A float function of accumulated input, evaluating ``node`` (its kind: :func:`spikemfm.ir.units.kind_of`);
    ``row`` its reduced length."""

    row: int
    node: Any = field(**_NODE)

    @property
    def kind(self) -> str:
        """The registered unit kind's name (``layernorm``, ``softmax``, ``rope``, …)."""
        return units.kind_of(self.node).name


@dataclass(frozen=True)
class Lookup(Record):
    """The MLP nonlinearity ``act`` of MLP ``owner`` as a lookup on its input neuron's count."""

    act: str
    owner: str
    node: N.MLP | None = field(**_NODE)


@dataclass(frozen=True)
class ResidualAdd(Record):
    """Sum of two synaptic currents into the residual stream."""


@dataclass(frozen=True)
class Pool(Record):
    """Token pooling of the stream (:func:`spikemfm.ir.units.pool.pool_tokens`) as readout ``node`` defines it."""

    kind: str
    node: N.Readout | None = field(**_NODE)


_PRODUCT_RECORDS = {r.kind: r for r in (ScoresProduct, ContextProduct, GateProduct)}
R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Netlist:
    """All records in execution order; ``output`` names the record whose value is the tower's output;
    ``blocks`` maps each record inside a transformer block to the block's index."""

    graph: str
    records: tuple[Record, ...]
    output: str
    tokens: int
    blocks: dict[str, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {r.name: r for r in self.records})

    def __getitem__(self, name: str) -> Record:
        return self._by_name[name]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def of(self, kind: type[R]) -> list[R]:
        """Records of one type, in execution order."""
        return [r for r in self.records if isinstance(r, kind)]

    def block(self, name: str) -> int | None:
        """Index of the block a record belongs to (None: encoding or readout)."""
        return self.blocks.get(name)

    def neurons(self, role: N.Role | None = None) -> list[NeuronLayer]:
        """Neuron layers (of one role)."""
        return [r for r in self.of(NeuronLayer) if role is None or r.role is role]

    def consumers(self, name: str) -> list[Record]:
        """Records fed by ``name``."""
        return [r for r in self.records if name in r.inputs]

    def pre(self, synapse: str) -> NeuronLayer:
        """The presynaptic neuron layer of a synaptic layer."""
        rec = self[synapse]
        if not isinstance(rec, SynapticLayer):
            raise KeyError(f"{synapse!r} is a {type(rec).__name__}, not a synaptic layer")
        pre = self[rec.pre]
        assert isinstance(pre, NeuronLayer)  # by construction: a synapse reads spikes
        return pre

    def post(self, name: str) -> list[Record]:
        """What a record drives (alias of :meth:`consumers`, for synapses: their postsynaptic units)."""
        return self.consumers(name)


class TraceOps(FloatOps):
    """Float ops that also record every unit they execute, with the records producing their operands."""

    def __init__(self, graph: N.EncoderGraph) -> None:
        super().__init__()
        self.embed = graph.embed
        self.attn_pools = N.find_nodes(graph, N.AttnPool)
        self.records: list[Record] = []
        self._producer: dict[int, str] = {}
        self._alive: list[torch.Tensor] = []  # keeps traced tensors alive so their ids stay unique

    def source(self, t: torch.Tensor) -> str:
        """The record that produced ``t`` (or the tensor ``t`` is a view of)."""
        base = t if t._base is None else t._base
        name = self._producer.get(id(base))
        if name is None:
            raise RuntimeError("netlist trace: an operand was produced outside the ops (engine step not hooked)")
        return name

    def _emit(self, y: torch.Tensor, rec: Record) -> torch.Tensor:
        self.records.append(rec)
        base = y if y._base is None else y._base
        self._producer[id(base)] = rec.name
        self._alive.append(base)
        return y

    def inject(self, x: torch.Tensor) -> torch.Tensor:
        return self._emit(x, Encoding(self.embed.path, (), tuple(x.shape[1:]), isinstance(self.embed, N.PatchEmbed)))

    def neuron(self, point: str, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(point, N.Point):
            raise TypeError(f"netlist trace: quantization point {point!r} is a plain string, not an ir.nodes.Point")
        y = x.clone()
        return self._emit(y, NeuronLayer(point, (self.source(x),), tuple(x.shape[1:])))

    def linear(self, node: N.Linear, c: torch.Tensor) -> torch.Tensor:
        y = super().linear(node, c)
        out_f, in_f = node.weight.shape
        return self._emit(y, SynapticLayer(node.path, (self.source(c),), tuple(y.shape[1:]), int(in_f), int(out_f),
                                           node))

    def product(self, node: Product, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        kind = units.product_kind(node)
        y = super().product(node, a, b)
        if kind.name == "context":  # computed token-major and returned as a (B, H, N, d) view, so the engine's
            y = y.transpose(-3, -2).contiguous().transpose(-3, -2)  # merge of the heads is a view of this record
        heads, inner = (1, 1) if kind.elementwise else (node.owner.num_heads, int(a.shape[-1]))
        rec = _PRODUCT_RECORDS[kind.name](node.path, (self.source(a), self.source(b)), tuple(y.shape[1:]),
                                          node.owner.path, heads, inner, node.owner)
        return self._emit(y, rec)

    def unit(self, node: Any, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        y = super().unit(node, x, mask)
        return self._emit(y, FloatUnit(node.path, (self.source(x),), tuple(y.shape[1:]), int(x.shape[-1]), node))

    def activation(self, mlp: N.MLP, z: torch.Tensor) -> torch.Tensor:
        hidden = self.neuron(mlp.point(N.Role.HIDDEN), z)
        y = self._emit(N.activation(mlp.act, hidden), Lookup(mlp.lut_name, (self.source(hidden),),
                                                             tuple(hidden.shape[1:]), mlp.act, mlp.path, mlp))
        return self.neuron(mlp.point(N.Role.ACT), y)

    def constant(self, name: str, x: torch.Tensor) -> torch.Tensor:
        fan_in = next(ap.latent.shape[-1] for ap in self.attn_pools if ap.latent_name == name)
        return self._emit(x, Constant(name, (), tuple(x.shape[1:]), int(fan_in)))

    def alias(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y holds x's neurons (grouped-query K / V repeated per query head): no record, x's producer."""
        base = y if y._base is None else y._base
        self._producer[id(base)] = self.source(x)
        self._alive.append(base)
        return y

    def residual(self, name: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._emit(x + y, ResidualAdd(name, (self.source(x), self.source(y)), tuple(x.shape[1:])))

    def pool(self, r: N.Readout, x: torch.Tensor, inputs: engine.Inputs) -> torch.Tensor:
        y = engine.pool(r, x, inputs).clone()
        return self._emit(y, Pool(r.pool_name, (self.source(x),), tuple(y.shape[1:]), r.pool, r))


def trace_inputs(graph: N.EncoderGraph, tokens: int | None = None) -> engine.Inputs:
    """One input of the tower's natural shape: an image of its position table's size, or ``tokens`` token ids
    (default: the whole position table, capped at 16)."""
    e = graph.embed
    if isinstance(e, N.PatchEmbed):
        return engine.Inputs(pixels=torch.zeros(1, e.channels, e.image_size, e.image_size))
    n = tokens or min(16, e.pos.shape[0] - (0 if e.pad_id is None else e.pad_id + 1))
    ids = torch.arange(n)[None] % (e.word.shape[0] - 1) + 1
    if e.pad_id is not None:
        ids[ids == e.pad_id] = e.pad_id + 1
    ids[0, -1] = e.word.shape[0] - 1  # an EOT-pooled tower reads the highest id
    return engine.Inputs(ids=ids, mask=torch.ones_like(ids))


@torch.no_grad()
def build_netlist(graph: N.EncoderGraph, tokens: int | None = None) -> Netlist:
    """Traces ``graph`` once through :func:`spikemfm.ir.engine.stages` and returns its netlist."""
    ops = TraceOps(graph)
    blocks: dict[str, int] = {}
    done, out = 1, None  # records before the first block: the encoding
    for i, (_, out) in enumerate(engine.stages(graph, trace_inputs(graph, tokens), ops, torch.float32)):
        if 1 <= i <= len(graph.blocks):  # stage i is block i − 1
            blocks.update({r.name: i - 1 for r in ops.records[done:]})
            done = len(ops.records)
    return Netlist(graph.name, tuple(ops.records), ops.source(out), ops.records[0].shape[0], blocks)

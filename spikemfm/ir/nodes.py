"""A small typed graph of a transformer encoder, shared by the float reference, the QANN and the SNN.

Like NIR, each node is a frozen dataclass holding its parameters, with its equation in the docstring.
Extraction (``spikemfm.ir.extract``) maps timm, open_clip and Hugging Face modules onto these nodes and
records each node's module path, so errors and reports name the original module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Callable

import torch


class Role(str, Enum):
    """What a neuron layer (quantization point) carries: its place in the block, not its name."""

    ATTN_IN = "attention_input"
    Q = "q"
    K = "k"
    V = "v"
    PROBS = "probabilities"
    CTX = "context"
    MLP_IN = "mlp_input"
    HIDDEN = "hidden"
    ACT = "activation"
    READOUT_IN = "readout_input"

    @property
    def suffix(self) -> str:
        """The last component of the point's name (``blocks.0.attn.q``)."""
        return _SUFFIX[self]

    @property
    def unsigned(self) -> bool:
        """Attention probabilities lie in [0, 1]: unsigned levels with a fixed step."""
        return self is Role.PROBS


_SUFFIX = {Role.ATTN_IN: "in", Role.Q: "q", Role.K: "k", Role.V: "v", Role.PROBS: "probs", Role.CTX: "ctx",
           Role.MLP_IN: "in", Role.HIDDEN: "hidden", Role.ACT: "act", Role.READOUT_IN: "in"}


class Point(str):
    """A quantization point: the plain name ``f"{owner}.{role.suffix}"`` (equal to and hashed as that string, so
    it keys every table as before) that also carries its ``owner`` node path and :class:`Role`."""

    owner: str
    role: Role

    def __new__(cls, owner: str, role: Role) -> "Point":
        self = super().__new__(cls, f"{owner}.{role.suffix}")
        self.owner, self.role = owner, role
        return self

    def __reduce__(self):  # copies and pickles keep the role (spikemfm.serialize stores plain strings)
        return (Point, (self.owner, self.role))


@dataclass(frozen=True)
class Linear:
    """y = x Wᵀ + b, W of shape (out, in)."""

    path: str
    weight: torch.Tensor
    bias: torch.Tensor | None


@dataclass(frozen=True)
class LayerNorm:
    """y = (x − mean(x)) / sqrt(var(x) + eps) · w + b over the last dimension."""

    path: str
    weight: torch.Tensor
    bias: torch.Tensor
    eps: float


@dataclass(frozen=True)
class Attention:
    """Multi-head self-attention.

    Q = x W_qᵀ + b_q (same for K, V), split into ``num_heads`` heads of size d;
    A = softmax(Q Kᵀ / √d + M) with M = −∞ on masked pairs (causal and/or padding);
    y = concat_h(A V) W_oᵀ + b_o.
    """

    path: str
    q: Linear
    k: Linear
    v: Linear
    o: Linear
    num_heads: int
    causal: bool

    def point(self, role: Role) -> Point:
        """The quantization point of one of this attention's neuron layers."""
        return Point(self.path, role)

    @property
    def scores_name(self) -> str:
        """Name of the Q·Kᵀ spike×spike product (netlist record, parameter keys)."""
        return f"{self.path}.qk"

    @property
    def context_name(self) -> str:
        """Name of the A·V spike×spike product."""
        return f"{self.path}.av"

    @property
    def softmax_name(self) -> str:
        """Name of the softmax float unit."""
        return f"{self.path}.softmax"


@dataclass(frozen=True)
class MLP:
    """y = fc2(act(fc1(x))), act one of ``ACTIVATIONS``."""

    path: str
    fc1: Linear
    act: str
    fc2: Linear

    def point(self, role: Role) -> Point:
        """The quantization point of one of this MLP's neuron layers."""
        return Point(self.path, role)

    @property
    def lut_name(self) -> str:
        """Name of the activation's lookup (netlist record)."""
        return f"{self.path}.lut"


@dataclass(frozen=True)
class Block:
    """A transformer block.

    pre-LN (``norm_first``):  x ← x + attn(ln1(x));  x ← x + mlp(ln2(x))
    post-LN (BERT):           x ← ln1(x + attn(x));  x ← ln2(x + mlp(x))
    """

    path: str
    norm_first: bool
    ln1: LayerNorm
    attn: Attention
    ln2: LayerNorm
    mlp: MLP

    def residual_name(self, half: str) -> str:
        """Name of the residual add closing the ``attention`` or ``mlp`` half."""
        if half not in ("attention", "mlp"):
            raise ValueError(f"{self.path}: half {half!r} is 'attention' or 'mlp'")
        return f"{self.path}.residual_{'attn' if half == 'attention' else 'mlp'}"


@dataclass(frozen=True)
class PatchEmbed:
    """x = [cls; conv_p(img)ᵀ] + pos, then optional LayerNorm (open_clip ``ln_pre``).

    conv_p: a (D, C, p, p) convolution with stride p; the encoding layer that reads the analog image.
    """

    path: str
    weight: torch.Tensor
    bias: torch.Tensor | None
    cls: torch.Tensor | None
    pos: torch.Tensor
    norm: LayerNorm | None

    @property
    def patches(self) -> int:
        """Image patches (tokens without the class token)."""
        return int(self.pos.shape[0]) - (1 if self.cls is not None else 0)

    @property
    def image_size(self) -> int:
        """Side of the square image the position table is for."""
        return int(math.isqrt(self.patches)) * int(self.weight.shape[-1])

    @property
    def channels(self) -> int:
        """Input channels."""
        return int(self.weight.shape[1])


@dataclass(frozen=True)
class TokenEmbed:
    """x = E[ids] + P[pos] (+ S[types]), then optional LayerNorm (BERT).

    pos = 0 … N−1, or with ``pad_id`` set (RoBERTa / XLM-R) pos = pad_id + cumsum(ids ≠ pad_id) on real tokens
    and pad_id on padding; S is the token-type (segment) table, row 0 where no types are given.
    """

    path: str
    word: torch.Tensor
    pos: torch.Tensor
    types: torch.Tensor | None
    norm: LayerNorm | None
    pad_id: int | None = None


@dataclass(frozen=True)
class Readout:
    """y = proj(pool(norm(x))) (or proj(norm(pool(x))) when ``norm_after_pool``); pool ∈ POOLS.

    cls: token 0; eot: the token at argmax(ids) (CLIP text); mean: masked mean over tokens
    (sentence-transformers); avg_tokens: mean over tokens ``prefix_tokens`` … N−1 (ViT ``avg`` pooling, which
    skips the class/register tokens: 1 with a class token, 0 without one or with ``pool_include_prefix``).
    """

    path: str
    norm: LayerNorm | None
    pool: str
    proj: Linear | None
    norm_after_pool: bool = False
    prefix_tokens: int = 1

    def point(self, role: Role) -> Point:
        """The quantization point of the readout's input neuron layer."""
        return Point(self.path, role)

    @property
    def pool_name(self) -> str:
        """Name of the pooling record."""
        return f"{self.path}.pool"


@dataclass(frozen=True)
class EncoderGraph:
    """A whole tower: embed → blocks → readout. ``input_kind`` is ``image`` or ``tokens``."""

    name: str
    input_kind: str
    embed: PatchEmbed | TokenEmbed
    blocks: tuple[Block, ...]
    readout: Readout

    @property
    def width(self) -> int:
        return int(self.embed.pos.shape[-1])


def float64_copy(graph: "EncoderGraph") -> "EncoderGraph":
    """A detached copy of a graph with every tensor in float64 (exact integer accumulation downstream)."""
    return map_tensors(graph, lambda t: t.detach().to(torch.float64))


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """A copy of a node tree (dataclasses, tuples, dict values) with every tensor replaced by ``fn(tensor)``."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, tuple):
        return tuple(map_tensors(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    if hasattr(obj, "__dataclass_fields__"):
        return replace(obj, **{k: map_tensors(getattr(obj, k), fn) for k in obj.__dataclass_fields__})
    return obj


def find_nodes(obj: Any, kind: type) -> list[Any]:
    """Every node of type ``kind`` in a node tree, depth first in field order."""
    if isinstance(obj, kind):
        return [obj]
    if isinstance(obj, tuple):
        return [n for o in obj for n in find_nodes(o, kind)]
    if hasattr(obj, "__dataclass_fields__"):
        return [n for k in obj.__dataclass_fields__ for n in find_nodes(getattr(obj, k), kind)]
    return []


ACTIVATIONS = ("gelu", "gelu_tanh", "quick_gelu", "relu")
POOLS = ("cls", "eot", "mean", "avg_tokens")


def activation(name: str, x: torch.Tensor) -> torch.Tensor:
    """The elementwise activation ``name`` applied to x."""
    if name == "gelu":
        return torch.nn.functional.gelu(x)
    if name == "gelu_tanh":
        return torch.nn.functional.gelu(x, approximate="tanh")
    if name == "quick_gelu":
        return x * torch.sigmoid(1.702 * x)
    if name == "relu":
        return torch.relu(x)
    raise ValueError(f"activation {name!r} unsupported; supported: {ACTIVATIONS}")

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
    VALUE = "value"
    GATED = "gated"
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
           Role.MLP_IN: "in", Role.HIDDEN: "hidden", Role.ACT: "act", Role.VALUE: "value", Role.GATED: "gated",
           Role.READOUT_IN: "in"}


class Point(str):
    """A quantization point: the plain name ``f"{owner}.{role.suffix}"`` (equal to and hashed as that string, so
    it keys every table as before) that also carries its ``owner`` node path and :class:`Role`."""

    owner: str
    role: Role

    def __new__(cls, owner: str, role: Role) -> "Point":
        self = super().__new__(cls, f"{owner}.{role.suffix}")
        self.owner, self.role = owner, role
        return self

    def __reduce__(self):  # copies and pickles keep the role (spikemfm.snn.serialize stores plain strings)
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
class Rope:
    """Rotary position embedding of an attention operand (EVA02): over the head dimension d, for the tokens after
    the first ``prefix`` (class / register tokens are not rotated),

        y = x ⊙ cos[pos] + rot(x) ⊙ sin[pos],   rot(x) = [−x₁, x₀, −x₃, x₂, …]  (``half``: [−x_{d/2:}, x_{:d/2}])

    a fixed position-dependent rotation of the synaptic current (a float unit on the accumulated current in the
    SNN: linear, so it commutes with accumulation).
    """

    path: str
    sin: torch.Tensor
    cos: torch.Tensor
    half: bool
    prefix: int


@dataclass(frozen=True)
class Attention:
    """Multi-head self-attention.

    Q = x W_qᵀ + b_q (same for K, V), split into ``num_heads`` heads of size d (K, V into ``kv_heads``, each
    read by ``num_heads / kv_heads`` query heads: grouped-query attention);
    with qk-norm, Q ← LN_q(Q), K ← LN_k(K) per head (over d); with RoPE, Q, K rotated per position (:class:`Rope`);
    A = softmax(Q Kᵀ / √d + M) with M = −∞ on masked pairs (causal and/or padding);
    y = norm(concat_h(A V)) W_oᵀ + b_o (``norm`` optional).
    """

    path: str
    q: Linear
    k: Linear
    v: Linear
    o: Linear
    num_heads: int
    causal: bool
    q_norm: LayerNorm | None = None
    k_norm: LayerNorm | None = None
    q_rope: Rope | None = None
    k_rope: Rope | None = None
    norm: LayerNorm | None = None  # sub-LN on the merged context before o (EVA02 ``scale_attn_inner``)
    num_kv_heads: int | None = None  # grouped-query attention: K / V heads, each shared by H / H_kv query heads

    @property
    def kv_heads(self) -> int:
        """K / V heads (``num_heads`` unless grouped-query)."""
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

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
    """y = fc2(act(fc1(x))), act one of ``ACTIVATIONS``; gated (``gate`` set, SwiGLU / GEGLU):
    y = fc2(norm(act(gate(x)) ⊙ fc1(x))), ``norm`` optional (EVA02's sub-LN).

    In the SNN the gate's activation is a lookup neuron, fc1's output (the value) a neuron layer, and their
    elementwise product a spike×spike product (like A·V), requantized by the ``gated`` neuron layer before fc2.
    """

    path: str
    fc1: Linear
    act: str
    fc2: Linear
    gate: Linear | None = None
    norm: LayerNorm | None = None

    @property
    def gate_name(self) -> str:
        """Name of the gate ⊙ value spike×spike product."""
        return f"{self.path}.gate"

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
    """x = [cls; extra; conv_p(img)ᵀ] + pos (``pos_on_prefix``) or [cls; extra; conv_p(img)ᵀ + pos] (timm
    ``no_embed_class``: DeiT3, DINOv2-reg), then optional LayerNorm (open_clip ``ln_pre``, timm ``norm_pre``).

    conv_p: a (D, C, p, p) convolution with stride p; the encoding layer that reads the analog image.
    ``extra``: further learned prefix tokens after the class token (DeiT's distillation token, register tokens).
    """

    path: str
    weight: torch.Tensor
    bias: torch.Tensor | None
    cls: torch.Tensor | None
    pos: torch.Tensor
    norm: LayerNorm | None
    extra: torch.Tensor | None = None
    pos_on_prefix: bool = True

    @property
    def prefix_tokens(self) -> int:
        """Learned tokens before the patches (class, distillation, registers)."""
        return (1 if self.cls is not None else 0) + (0 if self.extra is None else int(self.extra.shape[0]))

    def prefix(self) -> torch.Tensor | None:
        """The learned prefix tokens (P, D) in order, or None."""
        parts = ([self.cls[None]] if self.cls is not None else []) + ([self.extra] if self.extra is not None else [])
        return torch.cat(parts) if parts else None

    @property
    def patches(self) -> int:
        """Image patches (tokens without the prefix tokens)."""
        return int(self.pos.shape[0]) - (self.prefix_tokens if self.pos_on_prefix else 0)

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
    """x = E[ids] + P[pos] (+ S[types]), then optional LayerNorm (BERT), then optional ``proj`` (ELECTRA / ALBERT
    map a narrower embedding to the hidden width).

    pos = 0 … N−1, or with ``pad_id`` set (RoBERTa / XLM-R) pos = pad_id + cumsum(ids ≠ pad_id) on real tokens
    and pad_id on padding; S is the token-type (segment) table, row 0 where no types are given. The whole
    encoding runs once, in float, at step 1 (it is the analog input current of the first neurons).
    """

    path: str
    word: torch.Tensor
    pos: torch.Tensor
    types: torch.Tensor | None
    norm: LayerNorm | None
    pad_id: int | None = None
    proj: Linear | None = None
    mask_pad_id: int | None = None  # padding = the tokens equal to this id, where no attention mask is given


@dataclass(frozen=True)
class AttnPool:
    """Attention pooling with a learned latent query (timm ``global_pool='map'``, SigLIP):

    q = latent W_qᵀ + b_q (a constant current, computed once), K, V = x W_{k,v}ᵀ + b over tokens ``skip`` … N−1;
    y = o(softmax(q Kᵀ/√d) V);  y ← y + mlp(norm(y)) (when ``mlp`` is set);  pooled = y[latent 0].
    In the SNN: q, K, V, probabilities and context are neuron layers, q·Kᵀ and A·V spike×spike products,
    exactly as in a block's attention.
    """

    path: str
    latent: torch.Tensor
    attn: Attention
    norm: LayerNorm | None
    mlp: MLP | None
    skip: int = 0

    @property
    def latent_name(self) -> str:
        """Name of the latent query's constant current (netlist record)."""
        return f"{self.path}.latent"

    @property
    def residual_name(self) -> str:
        return f"{self.path}.residual_mlp"


@dataclass(frozen=True)
class Readout:
    """y = proj(pool(norm(x))) (or proj(norm(pool(x))) when ``norm_after_pool``); pool ∈
    :data:`spikemfm.ir.units.pool.POOLS` (the one definition of each is :mod:`spikemfm.ir.units.pool`).

    cls: token 0; last: token N−1 (open_clip ``text_pool_type='last'``); eot: the token at argmax(ids) (CLIP
    text), or the first token equal to ``eos_id`` where set (open_clip ``'eos'``); mean: masked mean over tokens (sentence-transformers); avg_tokens: mean over tokens ``prefix_tokens`` …
    N−1 (ViT ``avg`` pooling, which skips the class/register tokens: their count, or 0 with
    ``pool_include_prefix``); concat_prefix: tokens 0 … ``prefix_tokens``−1 side by side (B, P·D) (DeiT distilled:
    ``proj`` holds both heads, each halved, so proj(pool) = (head(x₀) + head_dist(x₁)) / 2); map: ``attn_pool``.
    """

    path: str
    norm: LayerNorm | None
    pool: str
    proj: Linear | None
    norm_after_pool: bool = False
    prefix_tokens: int = 1
    eos_id: int | None = None  # eot pooling: the first token equal to this id instead of argmax(ids)
    attn_pool: AttnPool | None = None  # pool 'map': attention pooling with a learned query

    def point(self, role: Role) -> Point:
        """The quantization point of the readout's input neuron layer."""
        return Point(self.path, role)

    @property
    def pool_name(self) -> str:
        """Name of the pooling record."""
        return f"{self.path}.pool"


@dataclass(frozen=True)
class EncoderGraph:
    """A whole tower: embed → blocks → readout. ``input_kind`` is ``image`` or ``tokens``. A causal language
    model is a token tower whose readout keeps every position (pool ``tokens``): its output is the logits
    (B, N, vocab)."""

    name: str
    input_kind: str
    embed: PatchEmbed | TokenEmbed
    blocks: tuple[Block, ...]
    readout: Readout

    @property
    def causal_lm(self) -> bool:
        """Whether this is a causal language model (logits at every position, incremental decoding)."""
        return self.readout.pool == "tokens"

    @property
    def width(self) -> int:
        return int(self.embed.pos.shape[-1])


def node_classes() -> tuple[type, ...]:
    """Every node class defined here (the structure of a graph; float-unit nodes are the unit kinds' own)."""
    return tuple(v for v in globals().values()
                 if isinstance(v, type) and v.__module__ == __name__ and hasattr(v, "__dataclass_fields__"))


def float64_copy(graph: "EncoderGraph") -> "EncoderGraph":
    """A detached copy of a graph with every tensor in float64 (exact integer accumulation downstream)."""
    return map_tensors(graph, lambda t: t.detach().to(torch.float64))


def map_paths(obj: Any, prefix: str) -> Any:
    """A copy of a node tree with ``prefix`` before every node path (a tower nested in a bigger module)."""
    if isinstance(obj, tuple):
        return tuple(map_paths(o, prefix) for o in obj)
    if hasattr(obj, "__dataclass_fields__"):
        changes = {k: map_paths(getattr(obj, k), prefix) for k in obj.__dataclass_fields__ if k != "path"}
        if "path" in obj.__dataclass_fields__:
            changes["path"] = prefix + obj.path
        return replace(obj, **changes)
    return obj


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """A copy of a node tree (dataclasses, tuples, dict values) with every tensor replaced by ``fn(tensor)``; a
    tensor the tree holds several times (a RoPE table every layer shares, tied embeddings) stays shared."""
    memo: dict[int, torch.Tensor] = {}

    def once(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in memo:
            memo[id(t)] = fn(t)
        return memo[id(t)]
    return map_nodes(obj, torch.Tensor, once)


def map_nodes(obj: Any, kind: type, fn: Callable[[Any], Any]) -> Any:
    """A copy of a node tree with every object of type ``kind`` (a node class, or ``torch.Tensor``) replaced by
    ``fn(obj)``; the rest is rebuilt around them."""
    if isinstance(obj, kind):
        return fn(obj)
    if isinstance(obj, tuple):
        return tuple(map_nodes(o, kind, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: map_nodes(v, kind, fn) for k, v in obj.items()}
    if hasattr(obj, "__dataclass_fields__") and not isinstance(obj, type):
        return replace(obj, **{k: map_nodes(getattr(obj, k), kind, fn) for k in obj.__dataclass_fields__})
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


ACTIVATIONS = ("gelu", "gelu_tanh", "quick_gelu", "relu", "silu", "sigmoid")


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
    if name == "silu":
        return torch.nn.functional.silu(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    raise ValueError(f"activation {name!r} unsupported; supported: {ACTIVATIONS}")

"""Spike×spike products: the three kinds, each with its float, QANN, spiking and integer semantics.

    scores   S = Q·Kᵀ · s   (H, queries, keys)   s = 1/√d in float; on levels s = step_q · step_k / √d
    context  C = A·V · s    (H, queries, d)      s = 1 in float;    on levels s = step_a · step_v
    gate     Z = G ⊙ V · s  elementwise          s = 1 in float;    on levels s = step_g · step_v (a gated MLP)

In the SNN a product of two running spike counts is built incrementally, P[t] = P[t−1] + ΔA·B[t−1] + A[t]·ΔB:
the work is one addition per spike of either train and partner it meets (``fan``); the product itself is the
exact integer A[t]·B[t], scaled like the QANN's. Integer form: y = (A·B · g) >> G, g = round(s · 2^(F+G)).
Every backend calls ``ops.product(node, a, b)`` with a :class:`Product` node and looks its kind up here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch


@dataclass(frozen=True)
class Product:
    """A spike×spike product ``path`` of kind ``kind`` inside ``owner`` (the attention or gated MLP node), between
    the neuron layers at ``points`` (a, b)."""

    path: str
    kind: str
    owner: Any = field(compare=False, repr=False)
    points: tuple[str, str] = ()


class ProductKind:
    """One kind of spike×spike product.

    Attributes:
        name: the kind (``scores``, ``context``, ``gate``).
        scales: the :class:`~spikemfm.quant.params.QParams` table holding its scale on levels, keyed by the owner.
        elementwise: a ⊙ b instead of a @ b.
        per_step: what it computes per step (the unit label).
        lava: None when the Lava ``SpikeProduct`` process runs it (as ``lava_kind``), else the refusal.
    """

    name: ClassVar[str]
    scales: ClassVar[str] = "ctx_scales"
    elementwise: ClassVar[bool] = False
    per_step: ClassVar[str]
    lava: ClassVar[str | None] = None
    lava_kind: ClassVar[str] = ""

    def operands(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two factors as multiplied: a @ b (or a ⊙ b)."""
        return a, b

    def float_scale(self, owner: Any) -> float:
        """The scale of the float product (1/√d for scores)."""
        return 1.0

    def combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The product of the operands as :meth:`operands` returns them."""
        return a * b if self.elementwise else a @ b

    def forward(self, node: Product, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The float product (float reference, calibration)."""
        y = self.combine(*self.operands(a, b))
        scale = self.float_scale(node.owner)
        return y * scale if scale != 1.0 else y

    def level_scale(self, qp: Any, node: Product) -> float:
        """The scale of the product of integer levels (the QANN's, the SNN's)."""
        return getattr(qp, self.scales)[node.owner.path]

    def fans(self, a: torch.Tensor, b: torch.Tensor) -> tuple[int, int]:
        """Elements of the product one spike of a (of b) updates, for the operands as multiplied."""
        return (1, 1) if self.elementwise else (b.shape[-1], a.shape[-2])

    def dense_work(self, shape: tuple[int, ...], inner: int, heads: int, scaled) -> tuple[float, float]:
        """(MACs, activation elements read and written) of one dense evaluation; ``scaled(n)`` maps a traced
        token count to the simulated one (``key=True``: a count of keys, which a cached decode pass attends to
        beyond its own tokens). Context / gate: (H, queries, d) summing ``inner`` keys."""
        queries, keys, d = scaled(shape[-2]), scaled(inner, key=True), shape[-1]
        return heads * queries * keys * d, 3 * heads * queries * max(keys, d)

    def delta_share(self, a: float, b: float) -> float:
        """The share of the product a dense delta accelerator recomputes when shares a, b of its operands' rows
        changed (ΔA·B + A·ΔB: each changed row of either)."""
        return min(1.0, a + b)


class ScoresKind(ProductKind):
    name = "scores"
    scales = "score_scales"
    per_step = "ΔQ·Kᵀ + Q·ΔKᵀ: add per spike of either train"
    lava_kind = "qk"

    def operands(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a, b.transpose(-1, -2)

    def float_scale(self, owner: Any) -> float:
        return 1.0 / math.sqrt(owner.q.weight.shape[0] // owner.num_heads)

    def dense_work(self, shape: tuple[int, ...], inner: int, heads: int, scaled) -> tuple[float, float]:
        queries, keys, d = scaled(shape[-2]), scaled(shape[-1], key=True), inner  # (H, queries, keys) over the head size
        return heads * queries * keys * d, 3 * heads * queries * max(keys, d)

    def delta_share(self, a: float, b: float) -> float:
        return 1 - (1 - a) * (1 - b)  # a score changes when its query row or its key row changed


class ContextKind(ProductKind):
    name = "context"
    per_step = "ΔA·V + A·ΔV: add per spike of either train"
    lava_kind = "av"


class GateKind(ProductKind):
    name = "gate"
    elementwise = True
    per_step = "ΔG⊙V + G⊙ΔV: add per spike of either train"
    lava = "a gated MLP's elementwise product has no Lava process yet; export an attention part instead"


PRODUCTS: dict[str, ProductKind] = {k.name: k for k in (ScoresKind(), ContextKind(), GateKind())}

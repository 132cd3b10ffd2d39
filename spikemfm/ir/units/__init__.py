"""The registry of unit kinds: one module per kind, one line here per kind.

Every float unit on accumulated input (LayerNorm, RoPE, softmax, …) is a :class:`~spikemfm.ir.units.base.UnitKind`
in a module of its own; the engine's ``unit`` hook, the spiking runtimes, the netlist tracer, the energy model,
the fixed-point reference, the Lava builder and the serializer's allow-list all look kinds up here.
Spike×spike products (Q·Kᵀ, A·V, gate ⊙ value) are the kinds of :mod:`spikemfm.ir.units.product`, reached through
the one ``ops.product`` hook; token pooling, written once, is :mod:`spikemfm.ir.units.pool`. Adding a kind: see ``docs/architecture.md``.
"""
from __future__ import annotations

from typing import Any

from spikemfm.ir.units import layernorm, rmsnorm, rope, softmax
from spikemfm.ir.units.base import UnitKind
from spikemfm.ir.units.product import PRODUCTS, Product, ProductKind

KINDS: dict[str, UnitKind] = {m.KIND.name: m.KIND for m in (layernorm, rmsnorm, rope, softmax)}  # the registry
_BY_NODE: dict[type, UnitKind] = {k.node: k for k in KINDS.values()}


def kind_of(node: Any) -> UnitKind:
    """The kind that evaluates ``node``; a clear error for a node no kind registers."""
    try:
        return _BY_NODE[type(node)]
    except KeyError:
        raise TypeError(f"{getattr(node, 'path', node)!r}: no unit kind registers {type(node).__name__} "
                        f"(registered: {sorted(KINDS)}); add one in spikemfm/ir/units/") from None


def get(name: str) -> UnitKind:
    """The kind called ``name`` (``layernorm``, ``softmax``, …)."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown unit kind {name!r}; registered: {sorted(KINDS)}") from None


def product_kind(node: Product | str) -> ProductKind:
    """The spike×spike product kind of a :class:`~spikemfm.ir.units.product.Product` node (or kind name)."""
    name = node if isinstance(node, str) else node.kind
    try:
        return PRODUCTS[name]
    except KeyError:
        raise KeyError(f"unknown spike×spike product kind {name!r}; registered: {sorted(PRODUCTS)}") from None


def node_types() -> tuple[type, ...]:
    """Every node type a kind registers (the serializer allows these classes in a saved model)."""
    return tuple(_BY_NODE)


__all__ = ["KINDS", "PRODUCTS", "Product", "ProductKind", "UnitKind", "get", "kind_of", "node_types", "product_kind"]

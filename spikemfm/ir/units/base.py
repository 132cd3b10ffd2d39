"""What a unit kind declares: the contract every float unit on accumulated input fulfils.

A *float unit* evaluates a float function of its accumulated input each step (NIR-style, t the time step):

    y[t] = f(Σ_{τ≤t} I[τ])        (exact: its input settles to the QANN's, so its output does too)

One module per kind (:mod:`spikemfm.ir.units.layernorm`, ``rope``, ``softmax``, ``rmsnorm``) holds the kind's
node, its float semantics (the float reference, the QANN and every spiking runtime call :meth:`UnitKind.forward`),
its integer form for the fixed-point reference and Lava's ``fixed_pt`` models (:meth:`UnitKind.fixed`), its
operation counts for the energy model, its label, and its Lava / NIR mapping or a worded refusal. The
registry (:mod:`spikemfm.ir.units`) maps node types to kinds; the runtimes, the netlist, the energy model, the
fixed-point reference, the Lava builder and the serializer dispatch through it and name no kind themselves.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch


class UnitKind:
    """One kind of float unit. Subclasses set the class attributes and implement the two semantics.

    Attributes:
        name: the kind's name in netlists, statistics and energy tables (``layernorm``).
        node: the node type (a frozen dataclass with a ``path``) the kind evaluates.
        per_step: what the unit computes per step, for :func:`spikemfm.snn.units.describe_units`.
        fp32_ops: (multiplies, adds) per element in fp32 on a dense accelerator (assumed counts, stated in ``ops_note``).
        int_ops: (instructions per element, per row) of the integer form, counted from :meth:`fixed`'s equations.
        per_row: the unit normalises whole rows (its cost per row is spread over the row's elements).
        row_over_tokens: the reduced row runs over tokens (softmax: keys), so it grows with the token count.
        delta: how a dense delta accelerator's share of recomputed work is found: ``"fed"`` (the changed rows of the
            neuron layers it feeds, a lower bound) or ``"scores"`` (rows whose query or any key changed).
        lava: None when the generic Lava float-unit process runs it; else the reason it has no Lava process.
        nir: why NIR 1.0 cannot express it (NIR has no normalisation, rotation or softmax node).
    """

    name: ClassVar[str]
    node: ClassVar[type]
    per_step: ClassVar[str]
    fp32_ops: ClassVar[tuple[int, int]]
    int_ops: ClassVar[tuple[int, int]]
    ops_note: ClassVar[str] = ""
    row_over_tokens: ClassVar[bool] = False
    delta: ClassVar[str] = "fed"
    lava: ClassVar[str | None] = None
    nir: ClassVar[str] = "NIR 1.0 has no node for it"

    def forward(self, node: Any, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The float function on accumulated input x (..., row); ``mask`` (True = blocked) only for softmax."""
        raise NotImplementedError(f"unit kind {self.name!r} has no float semantics")

    def fixed_params(self, node: Any, frac_bits: int) -> dict[str, Any]:
        """The integer parameters of the fixed-point form (values in Q.F, F = ``frac_bits``)."""
        return {}

    def fixed(self, node: Any, params: dict[str, Any], x: torch.Tensor, mask: torch.Tensor | None,
              frac_bits: int) -> torch.Tensor:
        """The integer form on int64 Q.F input x (the fixed-point reference and Lava's ``fixed_pt`` model)."""
        raise NotImplementedError(f"unit kind {self.name!r} has no integer form")


def round_int(x: torch.Tensor | float) -> torch.Tensor:
    """Round to the nearest integer, as int64 (the fixed-point parameters)."""
    return torch.round(torch.as_tensor(x, dtype=torch.float64)).to(torch.int64)


def isqrt(n: torch.Tensor) -> torch.Tensor:
    """⌊√n⌋ of non-negative int64 tensors (float estimate, then corrected to the exact integer root)."""
    r = torch.sqrt(n.to(torch.float64)).floor().to(torch.int64)
    r = torch.where(r * r > n, r - 1, r)
    return torch.where((r + 1) * (r + 1) <= n, r + 1, r)

"""The fidelity guard: the extracted graph must compute what the user's module computes.

SNN ≡ QANN is exact by construction, so the one place a conversion can silently stop being the user's model is
extraction. The guard runs a float64 copy of the module and the float64 graph on the same (calibration) inputs
and compares, in order, the embedding (the input of the first block, read with a forward pre-hook), the output
of every block (forward hooks on the modules the graph's node paths name) and the tower's output. The first
stage whose relative L2 difference exceeds ``rtol`` is named in a :class:`~spikemfm.errors.FidelityError`.

Tolerance: both sides run in float64 from the same float32 parameters, so a faithful extraction differs by
rounding only (≈1e-13 relative here); ``FIDELITY_RTOL = 1e-5`` is far above that and far below the smallest
mis-extraction seen (1.2 %, RoBERTa position ids).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from spikemfm.errors import FidelityError
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.ir.extract import extractor_for, first_tensor
from spikemfm.ir.float_ops import FloatOps

FIDELITY_RTOL = 1e-5
MAX_INPUTS = 16  # inputs of the first calibration batch that the guard checks (cost: two float64 forwards)


@dataclass(frozen=True)
class Fidelity:
    """How closely the graph reproduces the module: relative L2 difference per stage, in forward order."""

    stages: tuple[tuple[str, float], ...]
    inputs: int
    rtol: float = FIDELITY_RTOL

    @property
    def output_error(self) -> float:
        """Relative L2 difference of the tower's output."""
        return self.stages[-1][1]

    @property
    def first_divergence(self) -> tuple[str, float] | None:
        """The first stage beyond tolerance, or None when the graph is faithful."""
        return next(((n, e) for n, e in self.stages if not e <= self.rtol), None)


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    if a.shape != ref.shape and a.ndim == ref.ndim and a.transpose(0, 1).shape == ref.shape:
        a = a.transpose(0, 1)  # a sequence-first (N, B, D) module
    if a.shape != ref.shape:
        return float("inf")
    scale = float(ref.norm())
    return float((a - ref).norm()) / (scale if scale > 0 else 1.0)


def _capture(root: nn.Module, prefix: str, graph: N.EncoderGraph) -> tuple[dict[str, torch.Tensor], list[Any]]:
    """Hooks that record the first block's input (the embedding) and every block's output."""
    seen: dict[str, torch.Tensor] = {}
    handles = []
    for i, b in enumerate(graph.blocks):
        path = b.path[len(prefix):] if b.path.startswith(prefix) else b.path
        try:
            mod = root.get_submodule(path)
        except AttributeError:
            continue  # a block the module does not name as one submodule: compared through later stages
        def post(_m, _a, y, p=b.path) -> None:  # returns None: a hook's return value would replace the output
            seen.setdefault(p, first_tensor(y))  # the first call: a shared module (ALBERT) runs again later
        handles.append(mod.register_forward_hook(post))
        if i == 0:
            def pre(_m, args, kwargs, p=graph.embed.path):
                seen.setdefault(p, args[0] if args else next(iter(kwargs.values())))
            handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
    return seen, handles


def _inputs64(x: engine.Inputs) -> engine.Inputs:
    return engine.Inputs(None if x.pixels is None else x.pixels.to(torch.float64), x.ids, x.mask, x.types)


@torch.no_grad()
def measure_fidelity(model: nn.Module, graph: N.EncoderGraph, batch: Any,
                     rtol: float = FIDELITY_RTOL) -> Fidelity:
    """Compares ``graph`` with ``model`` (both in float64) on up to :data:`MAX_INPUTS` inputs of ``batch``."""
    ex = extractor_for(model)
    x = _inputs64(engine.as_inputs(graph, batch).head(MAX_INPUTS))
    ref = copy.deepcopy(model).to(torch.float64).eval()
    root, prefix = ex.root(ref)
    seen, handles = _capture(root, prefix, graph)
    try:
        seen[graph.readout.path] = ex.reference(ref, x)
    finally:
        for h in handles:
            h.remove()
    g64 = N.float64_copy(graph)
    try:
        stages = tuple((path, _rel(seen[path], y)) for path, y in engine.stages(g64, x, FloatOps(), torch.float64)
                       if path in seen)
    except (RuntimeError, ValueError, IndexError) as exc:  # shapes the extraction got wrong
        raise FidelityError(f"{type(model).__module__}.{type(model).__name__}: the extracted graph cannot run on "
                            f"the inputs the module runs on ({type(exc).__name__}: {exc}); this configuration is "
                            "not converted faithfully") from exc
    return Fidelity(stages, x.batch_size, rtol)


def check_fidelity(model: nn.Module, graph: N.EncoderGraph, batch: Any, rtol: float = FIDELITY_RTOL) -> Fidelity:
    """:func:`measure_fidelity`, raising :class:`FidelityError` naming the first diverging node.

    Raises:
        FidelityError: some stage of the graph differs from the module by more than ``rtol`` (relative L2).
    """
    fid = measure_fidelity(model, graph, batch, rtol)
    bad = fid.first_divergence
    if bad is not None:
        node, err = bad
        raise FidelityError(
            f"{type(model).__module__}.{type(model).__name__}: the extracted graph does not compute what the "
            f"module computes: first divergence at {node!r} (relative L2 {err:.3g} > {rtol:g}, float64, "
            f"{fid.inputs} calibration inputs); tower output differs by {fid.output_error:.3g}. This module's "
            "configuration is not converted faithfully: please report it with the model's config")
    return fid

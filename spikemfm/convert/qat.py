"""Quantization-aware training of a QANN: learned activation steps (LSQ) and weights, distilled from the float
model, for every family the converter extracts (it trains the extracted graph, not the family's module).

Forward pass (:class:`QATOps`): the QANN's exact semantics with straight-through rounding —

    neuron     x̂ = s · clamp(⌊x/s + ½⌋, lo, hi)        s = exp(log s) learned per quantization point (LSQ:
                                                          ∂x̂/∂s = ⌊x/s + ½⌋ − x/s inside the range, lo or hi
                                                          outside; ∂x̂/∂x = 1 inside, 0 outside)
    weights    ŵ = r · round(w / r), r = max|w_row| / (2^(b−1) − 1)   (per output row, as the converter does)

attention probabilities keep their fixed step 1/(2^b − 1), as in the QANN. Loss: the student's output error
relative to the teacher's output energy, ‖y − y_T‖² / ‖y_T‖², on real data. The result is rebuilt with the
converter's own code (:func:`~spikemfm.convert.qann.build_qparams` with the learned steps and the trained
weights), so it converts to an SNN that accumulates to it exactly, like any QANN.

Hand-written rather than a QAT library (brevitas, torch.ao): those quantize ``nn.Module`` layers of one
family, while spikemfm's quantization points live on the extracted graph shared by every family, and the
trained model must reproduce the converter's exact integer semantics.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

import torch
from tqdm.auto import tqdm

from spikemfm.core.checks import check_field_types
from spikemfm.convert.qann import QuantizedModel, build_qparams
from spikemfm.errors import ConfigError
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.ir.float_ops import FloatOps


@dataclass(frozen=True)
class QATConfig:
    """How QAT trains.

    Attributes:
        steps: optimizer steps (one batch each, cycling through the data).
        lr: Adam learning rate of the weights and biases.
        step_lr: Adam learning rate of the log activation steps.
        seed: shuffling of the batch order.
        schedule: "constant" learning rates, or "cosine" decay to zero over ``steps`` (LSQ's schedule; it lets
            long low-bit runs settle instead of hopping between rounding boundaries).
    """

    steps: int = 300
    lr: float = 1e-4
    step_lr: float = 1e-3
    seed: int = 0
    schedule: str = "constant"

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.steps < 1:
            raise ConfigError(f"QATConfig.steps={self.steps}: must be >= 1")
        for name in ("lr", "step_lr"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"QATConfig.{name}={getattr(self, name)}: must be > 0")
        if self.schedule not in ("constant", "cosine"):
            raise ConfigError(f"QATConfig.schedule={self.schedule!r}: use 'constant' or 'cosine'")


def _round_ste(v: torch.Tensor) -> torch.Tensor:
    """⌊v + ½⌋ forward (the QANN's rounding), identity backward."""
    return v + (torch.floor(v + 0.5) - v).detach()


class QATOps(FloatOps):
    """The QANN's forward with learnable steps and weights and straight-through rounding (products, float units
    and the activation as in the float reference, on the fake-quantized values)."""

    def __init__(self, qann: QuantizedModel, log_steps: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.quants = qann.qparams.quants
        self.linears = qann.qparams.linears
        self.log_steps = log_steps

    def neuron(self, point: str, x: torch.Tensor) -> torch.Tensor:
        q = self.quants[point]
        s = self.log_steps[point].exp() if point in self.log_steps else torch.tensor(q.step, dtype=x.dtype)
        v = (x / s).clamp(q.lo, q.hi)
        return _round_ste(v) * s

    def linear(self, node: N.Linear, c: torch.Tensor) -> torch.Tensor:
        ql = self.linears[node.path]
        bits = ql.row_bits if ql.row_bits is not None else torch.tensor(ql.bits)
        hi = (2.0 ** (bits.to(c.dtype) - 1) - 1).expand(node.weight.shape[0])[:, None]
        w = node.weight.to(c.dtype)
        amax = w.abs().amax(1, keepdim=True)
        r = torch.where(amax > 0, amax / hi, torch.ones_like(amax))
        w_hat = (w / r + (torch.round(w / r) - w / r).detach()) * r
        return torch.nn.functional.linear(c, w_hat, None if node.bias is None else node.bias.to(c.dtype))


def _trainable(lin: N.Linear) -> N.Linear:
    w = lin.weight.detach().to(torch.float32).clone().requires_grad_(True)
    b = None if lin.bias is None else lin.bias.detach().to(torch.float32).clone().requires_grad_(True)
    return replace(lin, weight=w, bias=b)


def _teacher_fn(qann: QuantizedModel, teacher: Any) -> Callable[[engine.Inputs], torch.Tensor]:
    """The distillation target: the user's float module (through its extractor's reference forward), or the
    float graph the QANN was built from."""
    if teacher is None:
        return lambda x: engine.run(qann.graph, x, FloatOps(), torch.float64)
    from spikemfm.ir import extractor_for

    ref = extractor_for(teacher)
    return lambda x: ref.reference(teacher, x)


def qat(qann: QuantizedModel, data: Iterable[Any], teacher: Any = None, config: QATConfig = QATConfig(),
        progress: bool = False) -> QuantizedModel:
    """Quantization-aware training of ``qann`` on ``data`` (a re-iterable collection of input batches).

    Args:
        qann: a QANN from :func:`~spikemfm.quantize` (uniform or mixed bits; its bit widths are kept).
        data: real input batches (images, token ids or tokenizer outputs), e.g. the calibration batches.
        teacher: the float module to distil from (its own forward, as the extractor calls it); None: the
            float graph the QANN was extracted from.
        config: steps and learning rates.
        progress: show a progress bar.

    Returns:
        A new :class:`QuantizedModel` with trained weights and learned steps (convert it as usual).
    """
    batches = list(data)
    if not batches:
        raise ConfigError("qat: no data batches given")
    # float32 copies of every tensor once (not a cast per call), the Linear weights as trainable leaves
    student = N.map_nodes(N.map_tensors(qann.graph, lambda t: t.to(torch.float32) if t.is_floating_point() else t),
                          N.Linear, _trainable)
    weights = [t for lin in N.find_nodes(student, N.Linear) for t in (lin.weight, lin.bias) if t is not None]
    log_steps = {p: torch.tensor(math.log(q.step), dtype=torch.float32, requires_grad=True)
                 for p, q in qann.qparams.quants.items() if q.lo < 0}  # signed points; probabilities stay fixed
    opt = torch.optim.Adam([{"params": weights, "lr": config.lr},
                            {"params": list(log_steps.values()), "lr": config.step_lr}])
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps) if config.schedule == "cosine"
             else None)
    ops, target = QATOps(qann, log_steps), _teacher_fn(qann, teacher)
    order = torch.Generator().manual_seed(config.seed)
    cycle = itertools.cycle(range(len(batches)))
    targets: dict[int, torch.Tensor] = {}  # the teacher's output per batch, computed once
    for _ in tqdm(range(config.steps), desc="QAT", disable=not progress):
        i = next(cycle) if len(batches) == 1 else int(torch.randint(len(batches), (1,), generator=order))
        x = engine.as_inputs(qann.graph, batches[i])
        if i not in targets:
            with torch.no_grad():
                targets[i] = target(x).to(torch.float32)
        y_t = targets[i]
        y = engine.run(student, x, ops, torch.float32)
        loss = (y - y_t).pow(2).sum() / y_t.pow(2).sum().clamp_min(1e-12)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    return _rebuild(qann, student, log_steps)


def _rebuild(qann: QuantizedModel, student: N.EncoderGraph, log_steps: dict[str, torch.Tensor]) -> QuantizedModel:
    """The trained QANN through the converter's own quantization code: the original float64 graph with the
    trained Linear weights, and the learned steps."""
    trained = {lin.path: lin for lin in N.find_nodes(student, N.Linear)}

    def back(lin: N.Linear) -> N.Linear:
        t = trained[lin.path]
        return replace(lin, weight=t.weight.detach().to(torch.float64),
                       bias=None if t.bias is None else t.bias.detach().to(torch.float64))

    graph = N.map_nodes(qann.graph, N.Linear, back)
    steps = {p: float(s.detach().exp()) for p, s in log_steps.items()}
    return QuantizedModel(graph, build_qparams(graph, None, qann.config, steps), qann.config, qann.allocation)

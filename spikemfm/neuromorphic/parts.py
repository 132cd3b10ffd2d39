"""Which part of a converted tower runs on the neuromorphic backend, and its PyTorch references.

A part is a residual sub-block (``mlp`` or ``attention`` of block i), a whole ``block`` i, or the
whole ``tower`` (blocks + readout). Its input is the residual stream entering it, a constant
current from step 1 on (for a sub-block, computed by the QANN on the real input; for the tower,
the encoding layer's output). The references run the same engine functions as
:func:`spikemfm.simulate`, one time step per call, with the float SNN ops or the fixed-point ops.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from spikemfm.core.checks import check_field_types
from spikemfm.convert.qann import QANNOps
from spikemfm.errors import ConfigError
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.ir.netlist import Encoding, Netlist, Record
from spikemfm.neuromorphic.fixed import FixedParams, FixedPointConfig, FixedStepOps, fixed_params
from spikemfm.snn.model import SpikingModel
from spikemfm.snn.simulate import step_ops

PART_KINDS = ("mlp", "attention", "block", "tower")


@dataclass(frozen=True)
class Part:
    """A part of a tower: ``kind`` in PART_KINDS, ``block`` the block index (ignored for ``tower``)."""

    kind: str = "block"
    block: int = 0

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.kind not in PART_KINDS:
            raise ConfigError(f"Part.kind={self.kind!r}: choose one of {PART_KINDS}")
        if not isinstance(self.block, int) or self.block < 0:
            raise ConfigError(f"Part.block={self.block!r}: must be a non-negative block index")

    def check(self, graph: N.EncoderGraph) -> None:
        """Raises when the block index does not exist in ``graph``."""
        if self.kind != "tower" and self.block >= len(graph.blocks):
            raise ConfigError(f"Part.block={self.block}: {graph.name} has {len(graph.blocks)} blocks "
                              f"(0..{len(graph.blocks) - 1})")


@dataclass
class Trace:
    """Per-step output and spikes of a part.

    Attributes:
        outputs: (T, ...) the part's output after each step (float64 values, or int64 Q.F for fixed point).
        spikes: neuron point → (T, ...) signed spikes fired at each step (int64).
    """

    outputs: torch.Tensor
    spikes: dict[str, torch.Tensor]


def part_input(snn: SpikingModel, part: Part, inputs: engine.Inputs) -> torch.Tensor:
    """The (float64) residual stream entering ``part`` for real ``inputs``, computed by the QANN."""
    graph = snn.graph
    part.check(graph)
    x = engine.embed(graph.embed, inputs, torch.float64)
    if part.kind == "tower":
        return x
    ops = QANNOps(snn.qparams)
    mask = engine.attention_mask(graph, inputs, x.shape[1])
    with torch.no_grad():
        for b in graph.blocks[:part.block]:
            x = engine.block(b, x, mask, ops)
        if part.kind == "mlp":
            x = engine.attention_half(graph.blocks[part.block], x, mask, ops)
    return x


def part_records(net: Netlist, graph: N.EncoderGraph, part: Part) -> list[Record]:
    """The netlist records of ``part`` in execution order (the tower: everything after the encoding). The
    attention half of a block ends at its residual add, or at the LayerNorm after it (post-LN)."""
    part.check(graph)
    if part.kind == "tower":
        return [r for r in net if not isinstance(r, Encoding)]
    records = [r for r in net if net.block(r.name) == part.block]
    if part.kind == "block":
        return records
    b = graph.blocks[part.block]
    end = b.residual_name("attention") if b.norm_first else b.ln1.path
    cut = next(i for i, r in enumerate(records) if r.name == end) + 1
    return records[:cut] if part.kind == "attention" else records[cut:]


def part_step(graph: N.EncoderGraph, part: Part, x: torch.Tensor, mask: torch.Tensor | None,
              inputs: engine.Inputs, ops: Any, fixed: bool) -> torch.Tensor:
    """One time step of ``part`` on input stream ``x``."""
    if part.kind == "tower":
        x = ops.inject(x)
        for b in graph.blocks:
            x = engine.block(b, x, mask, ops)
        return engine.readout(graph.readout, x, inputs, ops)
    b = graph.blocks[part.block]
    if part.kind == "mlp":
        return engine.mlp_half(b, x, ops)
    if part.kind == "attention":
        return engine.attention_half(b, x, mask, ops)
    return engine.block(b, x, mask, ops)


def step_inputs(snn: SpikingModel, part: Part, inputs: engine.Inputs | list[engine.Inputs], timesteps: int,
                steps_per_frame: int | None = None) -> tuple[list[torch.Tensor], engine.Inputs]:
    """(the float64 stream entering ``part`` at each step, the inputs its masks and pooling read).

    One batch (``steps_per_frame`` None): its stream, constant for ``timesteps`` steps. A stream: ``inputs`` is
    the list of frames (image towers: pooling and masks do not depend on pixels), each held for
    ``steps_per_frame`` steps — the state of every neuron carries over from frame to frame.
    """
    if steps_per_frame is None:
        return [part_input(snn, part, inputs)] * timesteps, inputs
    if snn.graph.input_kind != "image":
        raise ConfigError(f"{snn.graph.name}: streams of frames are for image towers")
    if isinstance(steps_per_frame, bool) or not isinstance(steps_per_frame, int) or steps_per_frame < 1 \
            or timesteps != len(inputs) * steps_per_frame:
        raise ConfigError(f"a stream of {len(inputs)} frames at steps_per_frame={steps_per_frame!r} needs "
                          f"timesteps = frames x steps_per_frame, got {timesteps}")
    xs = [part_input(snn, part, f) for f in inputs]
    return [x for x in xs for _ in range(steps_per_frame)], inputs[0]


def _trace(graph: N.EncoderGraph, part: Part, xs: list[torch.Tensor], inputs: engine.Inputs, ops: Any,
           fixed: bool) -> Trace:
    mask = engine.attention_mask(graph, inputs, xs[0].shape[1])
    outputs, history = [], []
    with torch.no_grad():
        for x in xs:
            ops.next_step()
            outputs.append(part_step(graph, part, x, mask, inputs, ops, fixed))
            history.append({k: v.to(torch.int64, copy=True) for k, v in ops.layer_counts().items()})
    spikes = {}
    for point in history[-1]:
        counts = torch.stack([h[point] for h in history])
        spikes[point] = torch.diff(counts, dim=0, prepend=torch.zeros_like(counts[:1]))
    return Trace(torch.stack(outputs), spikes)


def reference_float(snn: SpikingModel, part: Part, inputs: engine.Inputs | list[engine.Inputs], timesteps: int,
                    steps_per_frame: int | None = None) -> Trace:
    """The PyTorch SNN (:func:`spikemfm.snn.step_ops`) on ``part``, step by step (a stream of frames with
    ``steps_per_frame``: see :func:`step_inputs`)."""
    xs, first = step_inputs(snn, part, inputs, timesteps, steps_per_frame)
    ops = step_ops(snn, first.batch_size, timesteps)
    return _trace(snn.graph, part, xs, first, ops, fixed=False)


def reference_fixed(snn: SpikingModel, part: Part, inputs: engine.Inputs | list[engine.Inputs], timesteps: int,
                    fxp: FixedParams | None = None, steps_per_frame: int | None = None) -> Trace:
    """The integer PyTorch reference (:class:`~spikemfm.neuromorphic.fixed.FixedStepOps`) on ``part``."""
    fxp = fxp or fixed_params(snn.graph, snn.qparams, FixedPointConfig(), snn.netlist)
    xs, first = step_inputs(snn, part, inputs, timesteps, steps_per_frame)
    ops = FixedStepOps(snn.qparams, fxp, snn.config.max_spikes_per_step, snn.neuron_model)
    return _trace(snn.graph, part, [fxp.to_fixed(x) for x in xs], first, ops, fixed=True)

"""``simulate_stream``: a converted SNN run over a stream of frames whose state persists from frame to frame.

Only the encoding changes at a frame boundary: the analog input current becomes the new frame's patch embedding
(or token embedding), every neuron keeps its count, every synaptic layer its accumulated current, every product
its operands. A signed IF neuron moves its count toward level(accumulated input), so after a frame that changed
little only the neurons whose target moved spike, and the synapses they drive add only those changes — the
sigma-delta behaviour of Loihi 2 networks (Shrestha et al., ICASSP 2024), here for transformers.

Exactness: a step at which no neuron of the batch moved is a fixed point — every count sits at the level of its
input — so the output equals the QANN's on the current frame exactly. ``steps_per_frame="settle"`` steps each
frame until such a quiet step (or ``max_steps``); with a fixed number of steps per frame the output may lag the
QANN, and :attr:`StreamResult.settled` says per frame whether it caught up.

The step runtime (:class:`~spikemfm.snn.ops.SNNStepOps`) is the one that streams: its state is per step, and the
time-batched runtime's chunks would have to restart at every frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spikemfm.errors import ConfigError
from spikemfm.ir import engine
from spikemfm.snn.record import Recorder
from spikemfm.snn.record import cut_stats
from spikemfm.snn.simulate import SimResult, step_ops


@dataclass
class StreamResult:
    """Outcome of :func:`simulate_stream`.

    Attributes:
        outputs: (F, B, ...) the accumulated output at the end of each frame (``run.outputs`` holds every step's).
        steps_used: (F,) steps each frame ran (batch-wide: the batch steps together).
        settled: (F,) bool: the frame ended on a quiet step (output = the QANN's on that frame, exactly).
        run: the whole stream as one run of ``steps_used.sum()`` steps; :meth:`frame` cuts one frame out of it.
        starts: (F + 1,) first step of each frame, then the total.
        steps_per_frame: the int or ``"settle"`` the stream ran with; ``max_steps`` its cap.
    """

    outputs: torch.Tensor
    steps_used: torch.Tensor
    settled: torch.Tensor
    run: SimResult
    starts: torch.Tensor
    steps_per_frame: int | str
    max_steps: int

    @property
    def frames(self) -> int:
        return int(self.outputs.shape[0])

    def frame(self, f: int) -> SimResult:
        """Frame ``f`` as a run of its own (its steps' statistics): what :func:`spikemfm.estimate_energy` prices
        as the energy of that frame."""
        if not 0 <= f < self.frames:
            raise ConfigError(f"StreamResult.frame: f={f} must lie in [0, {self.frames})")
        return self.run.window(int(self.starts[f]), int(self.starts[f + 1]))

    def _per_frame(self, field: str) -> torch.Tensor:
        per_step = sum(getattr(st, field) for st in self.run.neuron_stats.values())
        if not torch.is_tensor(per_step):  # no neuron layer at all
            return torch.zeros(self.frames, dtype=torch.float64)
        return torch.stack([per_step[self.starts[f]:self.starts[f + 1]].sum() for f in range(self.frames)])

    @property
    def frame_spikes(self) -> torch.Tensor:
        """(F,) unit spikes of each frame, over every layer, summed over the batch."""
        return self._per_frame("spikes")

    @property
    def frame_messages(self) -> torch.Tensor:
        """(F,) messages (firing neurons per step: one graded message each), summed over the batch."""
        return self._per_frame("events")


def _check(frames: Any, steps_per_frame: int | str, max_steps: int) -> None:
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ConfigError(f"simulate_stream: max_steps={max_steps!r} must be a positive integer")
    if steps_per_frame != "settle" and (isinstance(steps_per_frame, bool) or not isinstance(steps_per_frame, int)
                                        or not 1 <= steps_per_frame <= max_steps):
        raise ConfigError(f"simulate_stream: steps_per_frame={steps_per_frame!r}: an integer in [1, max_steps="
                          f"{max_steps}] or 'settle'")
    if not torch.is_tensor(frames) or frames.dim() < 2 or frames.shape[0] < 1:
        raise ConfigError("simulate_stream: frames must be a tensor (F, B, ...) with at least one frame; got "
                          f"{type(frames).__name__}{tuple(frames.shape) if torch.is_tensor(frames) else ''}")


def simulate_stream(snn: Any, frames: torch.Tensor, steps_per_frame: int | str = "settle",
                    max_steps: int = 64, device: str | torch.device | None = None,
                    count_updates: bool = False) -> StreamResult:
    """Runs ``snn`` over ``frames`` (F, B, ...) keeping every neuron's and synapse's state across frames.

    Args:
        snn: a converted :class:`~spikemfm.snn.model.SpikingModel`.
        frames: F batches of B inputs each (images (F, B, C, H, W) or token ids (F, B, N)).
        steps_per_frame: steps per frame, or ``"settle"``: step until no neuron of the batch moves (then every
            output equals the QANN's on that frame), at most ``max_steps``.
        max_steps: the cap of a settling frame (and the bound of an int ``steps_per_frame``).
        device: where to run, as in :func:`~spikemfm.snn.simulate.simulate` (None: where the frames are; the
            numba step runtime on the CPU, its torch kernels elsewhere).
        count_updates: count the neurons an event-driven chip updates per step, as in
            :func:`~spikemfm.snn.simulate.simulate` (across frames: a neuron whose input the new frame left
            unchanged, and that does not fire, is not updated).
    """
    from spikemfm.snn import device as dev_

    _check(frames, steps_per_frame, max_steps)
    where = dev_.resolve(device, engine.as_inputs(snn.graph, frames[0]))
    snn, frames = dev_.to_device(snn, where), frames.to(where)
    graph, dtype = snn.graph, snn.quant_config.dtype
    limit = max_steps if steps_per_frame == "settle" else steps_per_frame
    budget = frames.shape[0] * limit
    first = engine.as_inputs(graph, frames[0])
    rec = Recorder(first.batch_size, budget)
    rec.track_samples()
    if count_updates:
        rec.track_updates()
    ops = step_ops(snn, rec, fused=where.type == "cpu")
    steps_out, used, settled, t = [], [], [], 0
    with torch.no_grad(), dev_.exact_matmuls(where):
        for f in range(frames.shape[0]):
            x = first if f == 0 else engine.as_inputs(graph, frames[f])
            x0 = engine.embed(graph.embed, x, dtype)  # the new frame's analog input current
            for k in range(limit):
                ops.next_step()
                steps_out.append(engine.run(graph, x, ops, dtype, x0=x0))
                quiet = not rec.moved[t].any()
                t += 1
                if quiet and steps_per_frame == "settle":
                    break
            used.append(k + 1)
            settled.append(bool(quiet))
    taken = slice(0, t)  # the recorder was sized for the cap; keep the steps the stream took
    neuron_stats, synapse_stats, float_stats = (cut_stats(st, taken) for st in rec.finish())
    run = SimResult(torch.stack(steps_out), neuron_stats, synapse_stats, float_stats, t, first.batch_size,
                    snn.config.max_spikes_per_step, graph, snn.qparams, netlist=snn.netlist)
    starts = torch.from_numpy(np.concatenate([[0], np.cumsum(used)]))
    ends = starts[1:] - 1
    return StreamResult(run.outputs[ends], torch.tensor(used), torch.tensor(settled), run, starts,
                        steps_per_frame, max_steps)

"""Lava vs PyTorch agreement: spike for spike, output for output, with both runs timed."""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from typing import Any

import torch

from spikemfm.snn.model import SpikingModel
from spikemfm.ir import engine
from spikemfm.neuromorphic.export import export_lava
from spikemfm.neuromorphic.fixed import FixedPointConfig, fixed_params
from spikemfm.neuromorphic.parts import Part, Trace, reference_fixed, reference_float


@dataclass(frozen=True)
class Agreement:
    """Lava run of one part vs its PyTorch reference (float SNN, or the integer reference for fixed_pt).

    Attributes:
        max_output_diff: max |Lava − reference| over all steps (float units; integer Q.F units for fixed_pt).
        spike_mismatches: (neuron, step) pairs whose spikes differ, over every neuron layer.
        spikes_compared: unit spikes fired by the reference over all layers and steps.
        fixed_vs_float: for fixed_pt, ‖fixed − float SNN‖ / ‖float SNN‖ of the last step's output (L2 over the batch).
        lava_steps_per_s: Lava steps per second after start-up (steps 2..T); torch_steps_per_s likewise
            for the PyTorch reference of the same part and batch, in the same run.
    """

    part: str
    block: int
    precision: str
    timesteps: int
    batch: int
    processes: int
    neuron_layers: int
    max_output_diff: float
    spike_mismatches: int
    spikes_compared: int
    fixed_vs_float: float | None
    lava_startup_s: float
    lava_steps_per_s: float
    torch_steps_per_s: float

    @property
    def exact(self) -> bool:
        """Spike for spike and (float) within 1e-6 / (fixed) bit-exact outputs."""
        tol = 1e-6 if self.precision == "floating_pt" else 0.0
        return self.spike_mismatches == 0 and self.max_output_diff <= tol


def _compare(lava: Trace, ref: Trace) -> tuple[float, int, int]:
    if set(lava.spikes) != set(ref.spikes):
        raise RuntimeError(f"neuron layers differ: Lava {sorted(lava.spikes)} vs PyTorch {sorted(ref.spikes)}")
    diff = float((lava.outputs.to(torch.float64) - ref.outputs.to(torch.float64)).abs().max())
    mismatches = sum(int((lava.spikes[k] != ref.spikes[k]).sum()) for k in ref.spikes)
    return diff, mismatches, int(sum(v.abs().sum() for v in ref.spikes.values()))


def _timed(fn: Any, *args: Any) -> tuple[Trace, float]:
    t0 = time.perf_counter()
    trace = fn(*args)
    return trace, time.perf_counter() - t0


def check_agreement(snn: SpikingModel, inputs: Any, part: Part, timesteps: int = 32,
                    precision: str = "floating_pt", fixed: FixedPointConfig | None = None,
                    steps_per_frame: int | None = None) -> Agreement:
    """Runs ``part`` in Lava (every neuron layer probed) and in PyTorch, and compares them. With
    ``steps_per_frame``, ``inputs`` is a stream of frames (F, B, ...) run back to back with the state kept
    (``timesteps`` = F × steps_per_frame)."""
    stream = steps_per_frame is not None
    x = [engine.as_inputs(snn.graph, f) for f in inputs] if stream else engine.as_inputs(snn.graph, inputs)
    fxp = fixed_params(snn.graph, snn.qparams, fixed or FixedPointConfig(), snn.netlist)
    float_ref, t_float = _timed(reference_float, snn, part, x, timesteps, steps_per_frame)
    ref, t_ref = (float_ref, t_float) if precision == "floating_pt" else \
        _timed(reference_fixed, snn, part, x, timesteps, fxp, steps_per_frame)
    with tempfile.TemporaryDirectory(prefix="spikemfm-lava-") as tmp:
        net = export_lava(snn, inputs if stream else x, part, timesteps, precision, fixed, probe_dir=tmp,
                          steps_per_frame=steps_per_frame)
        run = net.run()
    diff, mismatches, spikes = _compare(run.trace, ref)
    fvf = None
    if precision == "fixed_pt":
        last = float_ref.outputs[-1]
        fvf = float((fxp.to_float(ref.outputs[-1]) - last).norm() / last.norm().clamp_min(1e-12))
    batch = (x[0] if stream else x).batch_size
    return Agreement(part.kind, part.block, precision, timesteps, batch, net.num_processes, len(ref.spikes),
                     diff, mismatches, spikes, fvf, run.startup_s, run.steps_per_s, timesteps / t_ref)

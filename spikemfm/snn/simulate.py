"""``simulate``: multi-step simulation of a converted SNN, with per-layer per-step spike counts."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from spikemfm.quant.params import QParams
from spikemfm.errors import ConfigError
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.ir.netlist import Netlist
from spikemfm.snn.ops import SNNStepOps
from spikemfm.snn.record import FloatUnitStats, NeuronStats, Recorder, SynapseStats, cut_stats
from spikemfm.snn.timebatch import TimeBatchOps


@dataclass
class SimResult:
    """Outcome of :func:`simulate`.

    Attributes:
        outputs: (T, B, ...) in the QANN's precision; ``outputs[t]`` is the accumulated output after step t+1.
        neuron_stats: per neuron layer, spikes / firing neurons per step and neurons per sample.
        synapse_stats: per synaptic layer / spike×spike product, operations per step.
        float_stats: per softmax / LayerNorm unit, elements evaluated per step.
        timesteps: T.
        batch_size: B.
        max_spikes_per_step: the neurons' per-step spike bound (None = graded).
        graph: the simulated tower's graph (for the energy model).
        qparams: its quantization parameters (bit widths for the energy model).
        steps_used: (B,) with ``adaptive=True``: the steps an adaptive run takes per input — the first step at
            which no neuron of that input moved (its output then provably equals the QANN's, since every count
            sits at its target), or T where none was quiet. None for fixed-T runs.
        settled: (B,) bool with ``adaptive=True``: whether that quiet step came within T.
        netlist: the simulated model's netlist (so that pricing a run does not trace the graph again).
        context: positions each query attends to when that differs from the simulated tokens (a cached decode
            pass: the cache's length plus its own); None otherwise.
    """

    outputs: torch.Tensor
    neuron_stats: dict[str, NeuronStats]
    synapse_stats: dict[str, SynapseStats]
    float_stats: dict[str, FloatUnitStats]
    timesteps: int
    batch_size: int
    max_spikes_per_step: int | None
    graph: N.EncoderGraph | None = None
    qparams: QParams | None = None
    steps_used: torch.Tensor | None = None
    settled: torch.Tensor | None = None
    netlist: Netlist | None = None
    context: int | None = None

    @property
    def output(self) -> torch.Tensor:
        """The accumulated output after the last step."""
        return self.outputs[-1]

    def first(self, steps: int) -> "SimResult":
        """The same run cut after ``steps`` steps: what a fixed-T run of ``steps`` would have recorded (every
        statistic is per step, and step t never depends on later steps). Adaptive fields are dropped."""
        if not 1 <= steps <= self.timesteps:
            raise ConfigError(f"SimResult.first: steps={steps} must lie in [1, {self.timesteps}]")
        return self.window(0, steps)

    def window(self, start: int, stop: int) -> "SimResult":
        """Steps start … stop−1 of the run (0-based) as a run of their own: the statistics of those steps and the
        outputs after each (a stream's frame; see :func:`spikemfm.snn.stream.simulate_stream`). Adaptive fields
        are dropped."""
        if not 0 <= start < stop <= self.timesteps:
            raise ConfigError(f"SimResult.window: need 0 <= start < stop <= {self.timesteps}, got {start}, {stop}")
        cut = slice(start, stop)
        return replace(self, outputs=self.outputs[cut], neuron_stats=cut_stats(self.neuron_stats, cut),
                       synapse_stats=cut_stats(self.synapse_stats, cut), float_stats=cut_stats(self.float_stats, cut),
                       timesteps=stop - start, steps_used=None, settled=None)

    def spike_counts(self) -> dict[str, torch.Tensor]:
        """Unit spikes per step (T,) of each neuron layer, summed over the batch."""
        return {k: v.spikes for k, v in self.neuron_stats.items()}

    def total_spikes(self) -> float:
        """All unit spikes of the run, over every layer, step and sample."""
        return float(sum(v.spikes.sum() for v in self.neuron_stats.values()))

    def total_neurons(self) -> int:
        """Neurons per sample over all neuron layers."""
        return sum(v.neurons for v in self.neuron_stats.values())

    def max_error(self, reference: torch.Tensor) -> torch.Tensor:
        """max |output_t − reference| per step (T,)."""
        return (self.outputs - reference.to(self.outputs.dtype)).abs().reshape(self.timesteps, -1).amax(1)

    def t_exact(self, reference: torch.Tensor, rtol: float = 1e-4) -> int | None:
        """First T (1-based) from which the output stays within rtol·max|reference| of ``reference``."""
        tol = rtol * float(reference.abs().max().clamp_min(1e-12))
        ok = (self.max_error(reference) <= tol).tolist()
        if not ok[-1]:
            return None
        t = len(ok)
        while t > 0 and ok[t - 1]:
            t -= 1
        return t + 1


RUNTIMES = ("auto", "step", "torch", "time")
_CHUNK_ELEMENTS = 1 << 23  # largest per-chunk tensor of the time-batched runtime (32 MiB of float32)


def chunk_steps(graph: N.EncoderGraph, batch_size: int, tokens: int, timesteps: int) -> int:
    """Steps per chunk of the time-batched runtime: as many as keep its largest tensor under budget."""
    per_step = max(max(tokens * max(b.mlp.fc1.weight.shape[0], b.attn.q.weight.shape[0]),
                       b.attn.num_heads * tokens * tokens) for b in graph.blocks) if graph.blocks else tokens
    return max(1, min(timesteps, _CHUNK_ELEMENTS // max(1, batch_size * per_step)))


def step_ops(snn: Any, recorder: Recorder | int, timesteps: int | None = None, fused: bool = True) -> SNNStepOps:
    """The public stepping API: engine ops that advance ``snn`` one time step per engine run (call
    ``next_step()`` before each; ``layer_counts()`` gives every neuron layer's running counts). ``recorder`` is a
    :class:`~spikemfm.snn.record.Recorder`, or the batch size (then ``timesteps`` sizes a fresh one). Used by
    :func:`simulate` and by the Lava agreement traces, so both step the same model the same way. ``fused``:
    the numba neuron kernels (CPU); False: the same kernels in plain torch (any device)."""
    if isinstance(recorder, int):
        if timesteps is None:
            raise ConfigError("step_ops: give timesteps with a batch size")
        recorder = Recorder(recorder, timesteps)
    return SNNStepOps(snn.qparams, snn.netlist, snn.config.max_spikes_per_step, recorder, snn.quant_config.dtype,
                      snn.neuron_model, fused)


def simulate(snn: Any, inputs: Any, timesteps: int, runtime: str = "auto", adaptive: bool = False,
             device: str | torch.device | None = None, max_memory_mib: float | None = None,
             count_updates: bool = False) -> SimResult:
    """Runs a converted :class:`~spikemfm.snn.model.SpikingModel` for ``timesteps`` steps.

    Args:
        snn: the spiking model from :func:`spikemfm.convert`.
        inputs: image tensor (B, C, H, W), token ids (B, N) or a tokenizer output mapping.
        timesteps: number of simulation steps T >= 1.
        runtime: ``step`` (:class:`~spikemfm.snn.ops.SNNStepOps`: the whole tower once per step with the fused
            numba neuron kernels, settled layers skipped; CPU only), ``torch`` (the same step runtime with its
            neuron kernels in plain torch, :mod:`~spikemfm.snn.kernels_torch`: any device) or ``time``
            (:class:`~spikemfm.snn.timebatch.TimeBatchOps`: every layer over a chunk of steps at once; CPU). All
            give identical outputs and statistics. ``auto`` = ``step`` on the CPU (the fastest there,
            ``benchmarks/simulation_speed.py``), ``torch`` on any other device.
        adaptive: also find, per input, the first step at which no neuron moved (``SimResult.steps_used`` /
            ``settled``): from there the input's output equals the QANN's exactly, so an adaptive run stops
            it; the simulation itself stops once every input of the batch is quiet (the remaining steps would
            repeat the last output). Costs one comparison pass per firing neuron layer and step.
        device: where to run (``"cpu"``, ``"cuda"``, ``"cuda:1"``); None: where the inputs are. The model is
            moved there for the call when its tensors are elsewhere (move it once with
            :func:`spikemfm.snn.device.to_device` to avoid the copy per call). Outputs stay on the device.
        max_memory_mib: simulate the batch in chunks small enough that the estimated state
            (:func:`~spikemfm.snn.batching.bytes_per_input`) stays under this many MiB; the chunks' outputs and
            statistics are joined (:func:`~spikemfm.snn.batching.merge_results`): outputs, spike and synaptic
            statistics equal the unchunked run's; a float unit counts its evaluations per chunk, so only chunks
            whose input changed are charged.
        count_updates: also count, per neuron layer and step, the neurons whose input changed or that fired
            (:attr:`~spikemfm.snn.record.NeuronStats.updates`: what an event-driven chip updates; priced by
            profiles with ``neuron_updates = "on_input"``). Costs a comparison pass per neuron layer and step.
    """
    from spikemfm.snn import batching, device as dev_

    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ConfigError(f"simulate: timesteps={timesteps!r} must be a positive integer")
    if runtime not in RUNTIMES:
        raise ConfigError(f"simulate: runtime={runtime!r}; choose one of {RUNTIMES}")
    x = engine.as_inputs(snn.graph, inputs)
    where = dev_.resolve(device, x)
    if runtime == "auto":
        runtime = "step" if where.type == "cpu" else "torch"
    elif runtime in ("step", "time") and where.type != "cpu":
        raise ConfigError(f"simulate: runtime={runtime!r} runs on the CPU only (numba kernels / CPU buffers); "
                          f"use runtime='torch' (or 'auto') on {where}")
    snn, x = dev_.to_device(snn, where), dev_.inputs_to(x, where)
    chunk = batching.batch_chunk(snn, x, max_memory_mib)
    with dev_.exact_matmuls(where):
        runs = [_simulate(snn, x if chunk >= x.batch_size else batching.slice_inputs(x, i, i + chunk), timesteps,
                          runtime, adaptive, count_updates) for i in range(0, x.batch_size, chunk)]
    return runs[0] if len(runs) == 1 else batching.merge_results(runs)


def _simulate(snn: Any, x: engine.Inputs, timesteps: int, runtime: str, adaptive: bool,
              count_updates: bool) -> SimResult:
    """One batch on the device its tensors are on (see :func:`simulate`)."""
    graph = snn.graph
    rec = Recorder(x.batch_size, timesteps)
    if adaptive:
        rec.track_samples()
    if count_updates:
        rec.track_updates()
    dtype = snn.quant_config.dtype
    max_spikes = snn.config.max_spikes_per_step
    with torch.no_grad():
        x0 = engine.embed(graph.embed, x, dtype)  # the encoding layer runs once, at step 1
        if runtime in ("step", "torch"):
            outputs = _run_steps(step_ops(snn, rec, fused=runtime == "step"), graph, x, x0, timesteps, dtype, rec)
        else:
            ops = TimeBatchOps(snn.qparams, snn.netlist, max_spikes, rec, dtype, snn.neuron_model)
            outputs = _run_chunks(ops, graph, x, x0, timesteps, dtype, rec)
    neuron_stats, synapse_stats, float_stats = rec.finish()
    steps_used, settled = _settle(rec.moved) if adaptive else (None, None)
    return SimResult(outputs, neuron_stats, synapse_stats, float_stats, timesteps, x.batch_size,
                     max_spikes, graph, snn.qparams, steps_used, settled, snn.netlist)


def _settle(moved: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(steps used, settled) per sample from the (T, B) movement table: the first quiet step (1-based), else T."""
    quiet = ~moved
    settled = quiet.any(0)
    return torch.from_numpy(np.where(settled, quiet.argmax(0) + 1, moved.shape[0])), torch.from_numpy(settled)


def _all_quiet(rec: Recorder, t: int) -> bool:
    """Whether no neuron of any sample moved at step t (every later step would repeat it: stop early)."""
    return rec.moved is not None and not rec.moved[t].any()


def _run_steps(ops: SNNStepOps, graph: N.EncoderGraph, x: engine.Inputs, x0: torch.Tensor, timesteps: int,
               dtype: torch.dtype, rec: Recorder) -> torch.Tensor:
    outputs = []
    for t in range(timesteps):
        ops.next_step()
        outputs.append(engine.run(graph, x, ops, dtype, x0=x0))
        if _all_quiet(rec, t):  # adaptive: every input settled; the remaining steps repeat this output
            outputs += [outputs[-1]] * (timesteps - t - 1)
            break
    return torch.stack(outputs)


def _run_chunks(ops: TimeBatchOps, graph: N.EncoderGraph, x: engine.Inputs, x0: torch.Tensor, timesteps: int,
                dtype: torch.dtype, rec: Recorder) -> torch.Tensor:
    chunk = chunk_steps(graph, x.batch_size, x0.shape[1], timesteps)
    outputs = []
    for t0 in range(0, timesteps, chunk):
        ops.next_chunk(t0, min(chunk, timesteps - t0))
        out = engine.run(graph, x, ops, dtype, x0=x0)
        outputs.append(out.expand(ops.steps, *out.shape[1:]))  # (1, ...) when the output never changed
        if _all_quiet(rec, t0 + ops.steps - 1):  # adaptive: every input settled by the chunk's last step
            rest = timesteps - t0 - ops.steps
            outputs.append(outputs[-1][-1:].expand(rest, *out.shape[1:]))
            break
    return torch.cat(outputs)

"""``simulate``: multi-step simulation of a converted SNN, with per-layer per-step spike counts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from spikemfm.errors import ConfigError
from spikemfm.ir import engine
from spikemfm.snn.ops import SNNStepOps
from spikemfm.snn.record import FloatUnitStats, NeuronStats, Recorder, SynapseStats


@dataclass
class SimResult:
    """Outcome of :func:`simulate`.

    Attributes:
        outputs: (T, B, ...) float64; ``outputs[t]`` is the accumulated output after step t+1.
        neuron_stats: per neuron layer, spikes / firing neurons per step and neurons per sample.
        synapse_stats: per synaptic layer / spike×spike product, operations per step.
        float_stats: per softmax / LayerNorm unit, elements evaluated per step.
        timesteps: T.
        batch_size: B.
        max_spikes_per_step: the neurons' per-step spike bound (None = graded).
        graph: the simulated tower's graph (for the energy model).
        qparams: its quantization parameters (bit widths for the energy model).
    """

    outputs: torch.Tensor
    neuron_stats: dict[str, NeuronStats]
    synapse_stats: dict[str, SynapseStats]
    float_stats: dict[str, FloatUnitStats]
    timesteps: int
    batch_size: int
    max_spikes_per_step: int | None
    graph: Any = None
    qparams: Any = None

    @property
    def output(self) -> torch.Tensor:
        """The accumulated output after the last step."""
        return self.outputs[-1]

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


def simulate(snn: Any, inputs: Any, timesteps: int) -> SimResult:
    """Runs a converted :class:`~spikemfm.convert.spiking.SpikingModel` for ``timesteps`` steps.

    Args:
        snn: the spiking model from :func:`spikemfm.convert`.
        inputs: image tensor (B, C, H, W), token ids (B, N) or a tokenizer output mapping.
        timesteps: number of simulation steps T >= 1.
    """
    if not isinstance(timesteps, int) or timesteps < 1:
        raise ConfigError(f"simulate: timesteps={timesteps!r} must be a positive integer")
    graph = snn.graph
    x = engine.as_inputs(graph, inputs)
    rec = Recorder(x.batch_size, timesteps)
    ops = SNNStepOps(snn.qparams, snn.config.max_spikes_per_step, rec)
    outputs = []
    with torch.no_grad():
        x0 = engine.embed(graph.embed, x, torch.float64)  # the encoding layer runs once, at step 1
        for _ in range(timesteps):
            ops.next_step()
            outputs.append(engine.run(graph, x, ops, torch.float64, x0=x0))
    neuron_stats, synapse_stats, float_stats = rec.finish()
    return SimResult(torch.stack(outputs), neuron_stats, synapse_stats, float_stats, timesteps, x.batch_size,
                     snn.config.max_spikes_per_step, graph, snn.qparams)

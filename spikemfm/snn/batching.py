"""Bounded-memory simulation: the batch in chunks, and the chunks' results joined into one.

A step runtime holds, per input, every layer's state between steps: neuron counts, synaptic currents, the
cached outputs of float units and products, plus the per-step temporaries of the layer being updated.
:func:`bytes_per_input` estimates that from the netlist (a few tensors of each record's size at the QANN's
float width); ``benchmarks/scaling.py`` measures the real peak beside it.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import torch

from spikemfm.snn.record import per_step_fields
from spikemfm.errors import ConfigError
from spikemfm.ir import engine

_COPIES = 1  # one tensor of each record's size per input, at the float path's width: most state is int8/int32
# counts and currents, and a layer's temporaries live only while it steps. benchmarks/scaling.py measures the peak
# beside this estimate (ViT-S/16, float64, 4 spikes: ~0.25 GiB more per input, estimate 0.28 GiB).


def bytes_per_input(snn: Any, tokens: int | None = None) -> int:
    """Estimated simulation memory per input: ``_COPIES`` tensors of every netlist record's size at the QANN's
    float width (8 bytes for float64), for inputs of ``tokens`` tokens (text towers; None: the traced length)."""
    from spikemfm.ir.netlist import build_netlist

    net = snn.netlist if tokens is None or tokens == snn.netlist.tokens else build_netlist(snn.graph, tokens)
    width = torch.empty((), dtype=snn.quant_config.dtype).element_size()
    return _COPIES * width * sum(r.size for r in net.records)


def batch_chunk(snn: Any, x: engine.Inputs, max_memory_mib: float | None) -> int:
    """Inputs per chunk of batch ``x`` so that the estimated state stays under ``max_memory_mib`` (all of them
    when None)."""
    if max_memory_mib is None:
        return max(1, x.batch_size)
    if isinstance(max_memory_mib, bool) or not isinstance(max_memory_mib, (int, float)) or max_memory_mib <= 0:
        raise ConfigError(f"simulate: max_memory_mib={max_memory_mib!r} must be a positive number of MiB")
    batch_size = x.batch_size
    per = bytes_per_input(snn, None if x.ids is None else int(x.ids.shape[-1]))
    chunk = int(max_memory_mib * 2 ** 20 // per)
    if chunk < 1:
        raise ConfigError(f"simulate: max_memory_mib={max_memory_mib} is below one input's estimated state "
                          f"({per / 2 ** 20:.1f} MiB for {snn.graph.name}); raise it")
    return min(chunk, batch_size)


def slice_inputs(x: engine.Inputs, start: int, stop: int) -> engine.Inputs:
    """Inputs start … stop−1 of a batch."""
    return x.map(lambda t: t[start:stop])


def _sum_stats(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-layer statistics summed over batch chunks (per-step series added; the rest taken from the first)."""
    out = {}
    for part in parts:
        for key, stats in part.items():
            have = out.get(key)
            out[key] = stats if have is None else replace(have, **{f: getattr(have, f) + getattr(stats, f)
                                                                    for f in per_step_fields(have)})
    return out


def merge_results(runs: Sequence[Any]) -> Any:
    """One :class:`~spikemfm.snn.simulate.SimResult` for consecutive batch chunks simulated alike (same model, T,
    runtime): outputs and adaptive fields concatenated over the batch, per-step statistics summed (every one is
    a sum over the batch's inputs)."""
    if not runs:
        raise ConfigError("merge_results: no runs given")
    first = runs[0]
    if any(r.timesteps != first.timesteps or r.neuron_stats.keys() != first.neuron_stats.keys() for r in runs):
        raise ConfigError("merge_results: the runs differ in T or in their layers; merge runs of one model and T")
    cat = (lambda name: None if getattr(first, name) is None else torch.cat([getattr(r, name) for r in runs]))
    return replace(first, outputs=torch.cat([r.outputs for r in runs], dim=1),
                   neuron_stats=_sum_stats([r.neuron_stats for r in runs]),
                   synapse_stats=_sum_stats([r.synapse_stats for r in runs]),
                   float_stats=_sum_stats([r.float_stats for r in runs]),
                   batch_size=sum(r.batch_size for r in runs), steps_used=cat("steps_used"), settled=cat("settled"))

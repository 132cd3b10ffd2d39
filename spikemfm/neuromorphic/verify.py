"""Lava vs PyTorch agreement: spike for spike, output for output, with both runs timed."""
from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from spikemfm.convert.spiking import SpikingModel
from spikemfm.ir import engine
from spikemfm.neuromorphic.export import PRECISIONS, export_lava
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
                    precision: str = "floating_pt", fixed: FixedPointConfig | None = None) -> Agreement:
    """Runs ``part`` in Lava (every neuron layer probed) and in PyTorch, and compares them."""
    x = engine.as_inputs(snn.graph, inputs)
    fp = fixed_params(snn.graph, snn.qparams, fixed or FixedPointConfig())
    float_ref, t_float = _timed(reference_float, snn, part, x, timesteps)
    ref, t_ref = (float_ref, t_float) if precision == "floating_pt" else \
        _timed(reference_fixed, snn, part, x, timesteps, fp)
    with tempfile.TemporaryDirectory(prefix="spikemfm-lava-") as tmp:
        net = export_lava(snn, x, part, timesteps, precision, fixed, probe_dir=tmp)
        run = net.run()
    diff, mismatches, spikes = _compare(run.trace, ref)
    fvf = None
    if precision == "fixed_pt":
        last = float_ref.outputs[-1]
        fvf = float((fp.to_float(ref.outputs[-1]) - last).norm() / last.norm().clamp_min(1e-12))
    return Agreement(part.kind, part.block, precision, timesteps, x.batch_size, net.num_processes, len(ref.spikes),
                     diff, mismatches, spikes, fvf, run.startup_s, run.steps_per_s, timesteps / t_ref)


AGREEMENT_MODELS = ("tiny-clip-image", "minilm")


def _converted(model: str, n_inputs: int, bits: int, max_spikes: int | None, seed: int) -> tuple[SpikingModel, Any]:
    """A converted real model and a batch of real inputs (Fashion-MNIST test images / fortunes sentences).

    ``model`` is one of :data:`AGREEMENT_MODELS` (converted here with ``bits`` / ``max_spikes``) or a file
    written by ``spikemfm convert`` (used as saved; ``bits`` and ``max_spikes`` do not apply).
    """
    if model not in AGREEMENT_MODELS:
        from spikemfm.jobs import saved_test_inputs

        snn, inputs, _ = saved_test_inputs(model, n_inputs)
        return snn, inputs
    from spikemfm.convert import ConvertConfig, QuantConfig, convert, quantize
    from spikemfm.data import load_fashion_mnist, load_sentences
    from spikemfm.models.text import load_minilm
    from spikemfm.models.tiny_clip import load_tiny_clip
    from spikemfm.pipeline import calibration_images

    if model == "tiny-clip-image":
        qann = quantize(load_tiny_clip().visual, QuantConfig(bits=bits), calibration_images(256))
        inputs, _ = load_fashion_mnist("test").subset(n_inputs, seed).tensors()
    elif model == "minilm":
        text = load_minilm()
        qann = quantize(text, QuantConfig(bits=bits), [text.tokenize(load_sentences(64, seed=1))])
        inputs = text.tokenize(load_sentences(n_inputs, seed=seed + 2))
    return convert(qann, ConvertConfig(max_spikes_per_step=max_spikes)), inputs


def agreement_job(model: str, parts: list[tuple[str, int]], precisions: list[str], timesteps: int = 32,
                  n_inputs: int = 2, bits: int = 8, max_spikes: int | None = 16,
                  seed: int = 0, frac_bits: int = 16) -> list[dict[str, Any]]:
    """Agreement of parts of a real converted model on real inputs, for every (part, precision).

    ``model``: ``tiny-clip-image`` (the bundled tiny CLIP's ViT on Fashion-MNIST test images),
    ``minilm`` (all-MiniLM-L6-v2, post-LN BERT with padding, on real sentences) or the path of a model
    written by ``spikemfm convert`` (any family, on real test data fitted to it); ``frac_bits`` sets the
    fixed-point format (BERT's outlier features need F ≤ 14 to fit 24 bits). Quantized with
    calibration on training data / other sentences, then converted. Module-level and returning plain
    dicts so that :func:`~spikemfm.neuromorphic.isolate.run_isolated` can run it in a worker.
    """
    for p in precisions:
        if p not in PRECISIONS:
            raise ValueError(f"precision {p!r}: choose from {PRECISIONS}")
    snn, inputs = _converted(model, n_inputs, bits, max_spikes, seed)
    fixed = FixedPointConfig(frac_bits=frac_bits)
    return [asdict(check_agreement(snn, inputs, Part(kind, block), timesteps, precision, fixed))
            for kind, block in parts for precision in precisions]

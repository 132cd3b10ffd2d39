"""``spikemfm demo --model <any supported model>``: the user's float module → QANN → SNN on real data.

The bundled tiny CLIP has labels and prompts, so its demo reports zero-shot accuracy (:mod:`spikemfm.app.demo`).
Any other tower is judged against itself: the QANN against the user's float module (cosine; top-1 agreement for
classifiers), and the SNN at each T against the QANN (the fraction of inputs whose accumulated output already
equals the QANN's, and the cosine with the float module).
"""
from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F

from spikemfm.app.data import DataSource, real_batches
from spikemfm.app.inputs import input_spec

EXACT_RTOL = 1e-4  # an SNN output "equals" the QANN's within this fraction of the QANN output's max |value|


def _top1(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.argmax(-1) == b.argmax(-1)).double().mean())


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.double(), b.double(), dim=-1).mean())


def _stage_rows(ref: torch.Tensor, qann: torch.Tensor, snn: torch.Tensor, timesteps: tuple[int, ...],
                classifier: bool, bits: int, spikes: str) -> list[dict[str, Any]]:
    """Rows of the FP32 / QANN / SNN-at-T comparison on one concatenated set of outputs."""
    top = (lambda a: _top1(a, ref)) if classifier else (lambda a: "-")
    rows = [{"stage": "FP32 (your module)", "T": "-", "cosine_vs_fp32": 1.0, "top1_vs_fp32": top(ref),
             "exact_vs_qann": "-"},
            {"stage": f"QANN {bits}-bit", "T": "-", "cosine_vs_fp32": _cos(qann, ref), "top1_vs_fp32": top(qann),
             "exact_vs_qann": 1.0}]
    tol = EXACT_RTOL * qann.abs().amax(-1).clamp_min(1e-12)
    for t in sorted(timesteps):
        out = snn[t - 1]
        exact = float(((out - qann).abs().amax(-1) <= tol).double().mean())
        rows.append({"stage": f"SNN {bits}-bit, {spikes} spikes/step", "T": t, "cosine_vs_fp32": _cos(out, ref),
                     "top1_vs_fp32": top(out), "exact_vs_qann": exact})
    return rows


def run_model_demo(job: Any, timesteps: tuple[int, ...], n_inputs: int, batch_size: int,
                   progress: bool = True) -> tuple[list[dict[str, Any]], str]:
    """Converts ``job``'s model (a :class:`~spikemfm.app.jobs.ConvertJob`) and compares FP32, QANN and SNN on
    ``n_inputs`` real test inputs. Returns one row per stage / T (``inputs`` and ``seconds`` included) and a note
    saying which data was used."""
    from spikemfm.convert import ConvertConfig, QuantConfig, quantize
    from spikemfm.snn import convert
    from spikemfm.convert.qann import as_graph
    from spikemfm.ir import as_inputs, extractor_for
    from spikemfm.app.jobs import load_tower
    from spikemfm.snn import simulate

    from spikemfm.errors import ConfigError

    if batch_size < 1 or n_inputs < 1 or not timesteps or min(timesteps) < 1:
        raise ConfigError(f"demo: batch_size={batch_size}, inputs={n_inputs}, timesteps={timesteps}: each must be "
                          ">= 1")
    t0 = time.perf_counter()
    tower, tokenizer = load_tower(job)
    graph = as_graph(tower)
    spec = input_spec(tower, graph) if graph.input_kind == "image" else None
    data = DataSource(job.data)
    calib, _ = real_batches(graph, spec, tokenizer, "train", job.calib_samples, 64, data)
    qann = quantize(tower, QuantConfig(bits=job.bits), calib, progress=progress)
    snn = convert(qann, ConvertConfig(max_spikes_per_step=job.spikes_per_step))
    batches, note = real_batches(graph, spec, tokenizer, "test", n_inputs, batch_size, data)
    refs, qs, sims = [], [], []
    steps = max(timesteps)
    for i, x in enumerate(batches):
        with torch.no_grad():
            refs.append(extractor_for(tower).reference(tower, as_inputs(graph, x)).double())
        qs.append(qann(x).double())
        sims.append(simulate(snn, x, steps).outputs.double())
        if progress:
            print(f"  demo: batch {i + 1}/{len(batches)} simulated (T={steps})", flush=True)
    ref, q, s = torch.cat(refs), torch.cat(qs), torch.cat(sims, dim=1)
    classifier = int(getattr(tower, "num_classes", 0) or 0) > 0
    spikes = "graded" if job.spikes_per_step is None else f"<={job.spikes_per_step}"
    rows = _stage_rows(ref, q, s, timesteps, classifier, job.bits, spikes)
    seconds = round(time.perf_counter() - t0, 2)
    return [{"stage": r["stage"], "inputs": int(ref.shape[0]), **{k: v for k, v in r.items() if k != "stage"},
             "seconds": seconds if i == len(rows) - 1 else ""} for i, r in enumerate(rows)], note

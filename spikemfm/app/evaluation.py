"""``spikemfm evaluate``: accuracy (or cosine) against T of a converted tower on real data, with its spike
statistics and energy, data-parallel under ``torchrun`` and resumable.

The data is cut into fixed batches; batch i belongs to rank i mod world size. Each batch's record — metric counts
and sums per T, and every layer's per-step statistics (sums over its inputs) — is written atomically to
``OUT/.partial/<fingerprint>/batch-NNNNNN.pt`` before the next batch starts, so an interrupted run continues where it
stopped (with any number of processes). The records are gathered on every rank and summed in batch order, so the
totals are the same numbers as a single process's; rank 0 writes ``evaluate.{json,csv,md}`` and
``layers.{json,csv,md}`` as one output set.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from spikemfm.app import distributed
from spikemfm.app.eval_data import EvalData, batch_size, class_scores, load_eval_data
from spikemfm.errors import ConfigError

METRICS = ("correct", "agree_qann", "exact", "cos_qann", "cos_float")  # per T, summed over inputs
EXACT_RTOL = 1e-4  # an input is exact when max|snn − qann| <= EXACT_RTOL · max|qann| (as SimResult.t_exact)


@dataclass(frozen=True)
class EvalConfig:
    """An evaluation: which data, how many inputs, at which T, where, and priced on which profiles."""

    data: str = "default"
    inputs: int = 200
    timesteps: tuple[int, ...] = (8,)
    batch_size: int = 50
    profiles: tuple[str, ...] = ("loihi2",)
    device: str | None = None
    max_memory_mib: float | None = None

    def __post_init__(self) -> None:
        for name in ("inputs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"EvalConfig.{name}={v!r}: must be a positive integer")
        ts = self.timesteps
        if not ts or any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in ts):
            raise ConfigError(f"EvalConfig.timesteps={ts!r}: give one or more positive integers")
        if not isinstance(self.data, str) or not self.data:
            raise ConfigError(f"EvalConfig.data={self.data!r}: a data set name, video:<name> or a path")
        if self.device is not None:
            from spikemfm.snn.device import check_device

            check_device(self.device)  # before any model loads
        if self.max_memory_mib is not None and not self.max_memory_mib > 0:
            raise ConfigError(f"EvalConfig.max_memory_mib={self.max_memory_mib!r}: must be a positive number of MiB")

    @property
    def t_max(self) -> int:
        return max(self.timesteps)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.double().flatten(1), b.double().flatten(1), dim=-1)


def _stats(sim: Any) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    """Every layer's per-step series (sums over the batch's inputs)."""
    from spikemfm.snn.record import per_step_fields

    # plain-str layer names: a record must load with torch.load(weights_only=True) (no spikemfm classes)
    return {group: {str(k): {f: getattr(v, f).double() for f in per_step_fields(v)}
                    for k, v in getattr(sim, group).items()}
            for group in ("neuron_stats", "synapse_stats", "float_stats")}


def batch_record(snn: Any, qann: Any, x: Any, labels: torch.Tensor | None, score: Callable | None,
                 cfg: EvalConfig) -> dict[str, Any]:
    """One batch: metric sums per T (``metrics`` (len(T), 5) in :data:`METRICS` order), the largest relative error
    per T, the references (QANN / float correct and their cosine) and every layer's statistics."""
    from spikemfm.ir import engine
    from spikemfm.energy import counts_updates
    from spikemfm.snn import simulate
    from spikemfm.snn.device import inputs_to, model_device

    x = inputs_to(engine.as_inputs(snn.graph, x), model_device(qann))
    sim = simulate(snn, x, cfg.t_max, device=cfg.device, max_memory_mib=cfg.max_memory_mib,
                   count_updates=counts_updates(cfg.profiles))
    ref, flt = qann(x).cpu(), qann.float_forward(x).cpu()
    outs = sim.outputs.cpu()
    y = labels
    ref_pred = score(ref).argmax(-1) if score is not None else None
    metrics, max_rel = [], []
    tol = ref.flatten(1).abs().amax(1).clamp_min(1e-12) * EXACT_RTOL
    for t in cfg.timesteps:
        out = outs[t - 1]
        err = (out - ref).flatten(1).abs().amax(1)
        pred = score(out).argmax(-1) if score is not None else None
        metrics.append([float((pred == y).sum()) if pred is not None else 0.0,
                        float((pred == ref_pred).sum()) if pred is not None else 0.0,
                        float((err <= tol).sum()), float(_cos(out, ref).sum()), float(_cos(out, flt).sum())])
        max_rel.append(float((err / (tol / EXACT_RTOL)).max()))
    refs = [float((ref_pred == y).sum()) if score is not None else 0.0,
            float((score(flt).argmax(-1) == y).sum()) if score is not None else 0.0, float(_cos(ref, flt).sum())]
    return {"n": torch.tensor(float(sim.batch_size), dtype=torch.float64),
            "metrics": torch.tensor(metrics, dtype=torch.float64), "max_rel": torch.tensor(max_rel, dtype=torch.float64),
            "refs": torch.tensor(refs, dtype=torch.float64), "stats": _stats(sim)}


def _combine(a: Any, b: Any, key: str = "") -> Any:
    """Two records added (``max_rel`` by max), field by field."""
    if isinstance(a, dict):
        if a.keys() != b.keys():
            raise ConfigError(f"evaluate: batch records differ in {key or 'fields'}; delete the .partial folder")
        return {k: _combine(a[k], b[k], k) for k in a}
    return torch.maximum(a, b) if key == "max_rel" else a + b


def total(records: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The records of every batch summed in batch order (the same numbers for any number of processes)."""
    order = sorted(records)
    acc = records[order[0]]
    for i in order[1:]:
        acc = _combine(acc, records[i])
    return acc


def fingerprint(model_file: Path, cfg: EvalConfig) -> str:
    """Identifies the partial results a run may reuse: the model file's bytes and every setting that can change a
    record (the device's float kernels and the chunking's float-unit counts included; not the profiles: pricing
    happens after)."""
    h = hashlib.sha256()
    with open(model_file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    keys = {k: v for k, v in asdict(cfg).items() if k != "profiles"}
    keys["device"] = torch.device(cfg.device or "cpu").type  # the kind of kernels, not which GPU of a rank
    h.update(json.dumps(keys, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _records(snn: Any, qann: Any, data: EvalData, score: Callable | None, cfg: EvalConfig, folder: Path,
             world: distributed.World, progress: bool) -> dict[int, dict[str, Any]]:
    """This rank's batches: loaded where a partial result exists, else simulated and saved atomically."""
    from spikemfm.core.io import atomic_write_bytes

    mine = list(range(world.rank, len(data.batches), world.size))
    starts = [0]
    for b in data.batches:
        starts.append(starts[-1] + batch_size(b))
    out = {}
    for i in tqdm(mine, desc=f"evaluate (rank {world.rank})", disable=not progress, unit="batch"):
        path = folder / f"batch-{i:06d}.pt"
        if path.exists():
            out[i] = torch.load(path, weights_only=True)
            continue
        labels = data.labels[starts[i]:starts[i + 1]] if data.labels is not None else None
        rec = batch_record(snn, qann, data.batches[i], labels, score, cfg)
        buf = io.BytesIO()
        torch.save(rec, buf)
        atomic_write_bytes(path, buf.getvalue())
        out[i] = rec
    return out


def aggregate_sim(template: Any, tot: dict[str, Any]) -> Any:
    """A :class:`~spikemfm.snn.simulate.SimResult` carrying the whole evaluation's statistics (for the energy
    model): ``template`` (a one-input run of the same model) gives each layer's static fields; outputs are not
    kept (an empty (T, 0) tensor)."""
    groups = {}
    for group, per_layer in tot["stats"].items():
        static = getattr(template, group)
        missing = per_layer.keys() - static.keys()
        if missing:
            raise ConfigError(f"evaluate: layers {sorted(missing)[:3]} were recorded but not in the model's template "
                              "run; delete the .partial folder and rerun")
        # the template's keys: quantization points keep their roles for the energy model
        groups[group] = {k: replace(v, **per_layer[k]) for k, v in static.items() if k in per_layer}
    steps = tot["stats"]["neuron_stats"]
    t = len(next(iter(steps.values()))["spikes"]) if steps else template.timesteps
    return replace(template, outputs=torch.empty(t, 0), timesteps=t, batch_size=int(tot["n"]), steps_used=None,
                   settled=None, **groups)


def result_rows(tot: dict[str, Any], agg: Any, cfg: EvalConfig, scored: bool) -> list[dict[str, Any]]:
    """One row per T: accuracy (when scored), agreement, exactness, cosines, spikes and energy per input."""
    from spikemfm.energy import estimate_energy

    n = float(tot["n"])
    rows = []
    for j, t in enumerate(cfg.timesteps):
        m = dict(zip(METRICS, tot["metrics"][j].tolist()))
        run = agg.first(t)
        spikes = sum(float(v.spikes.sum()) for v in run.neuron_stats.values())
        events = sum(float(v.events.sum()) for v in run.neuron_stats.values())
        row = {"T": t, "inputs": int(n),
               "accuracy": m["correct"] / n if scored else None,
               "qann_accuracy": float(tot["refs"][0]) / n if scored else None,
               "float_accuracy": float(tot["refs"][1]) / n if scored else None,
               "top1_agreement_qann": m["agree_qann"] / n if scored else None,
               "exact_share": m["exact"] / n, "cosine_vs_qann": m["cos_qann"] / n,
               "cosine_vs_float": m["cos_float"] / n, "qann_cosine_vs_float": float(tot["refs"][2]) / n,
               "max_rel_error": float(tot["max_rel"][j]), "spikes_per_input": spikes / n,
               "messages_per_input": events / n,
               "spike_rate": spikes / (n * t * max(1, run.total_neurons()))}
        for p in cfg.profiles:
            s = estimate_energy(run, p).summary()
            row[f"{p}:snn_nJ"], row[f"{p}:dense_int8_nJ"] = s["snn_nJ"], s["int8_nJ"]
            row[f"{p}:complete"] = s["complete"]
        rows.append(row)
    return rows


def layer_rows(agg: Any) -> list[dict[str, Any]]:
    """Per neuron layer at the longest T: unit spikes, messages (firing neurons) and rate per input."""
    n, t = agg.batch_size, agg.timesteps
    return [{"layer": k, "neurons": v.neurons, "spikes_per_input": float(v.spikes.sum()) / n,
             "messages_per_input": float(v.events.sum()) / n,
             "spike_rate": float(v.spikes.sum()) / (n * t * max(1, v.neurons))} for k, v in agg.neuron_stats.items()]


def _model_file(model: str, source: dict[str, Any], out: Path, world: distributed.World, progress: bool) -> Path:
    """The saved model to evaluate: ``model`` itself when it is a file, else the named model converted once (by
    rank 0) into ``OUT/.partial/model`` — kept, so that a resumed run reuses it when the options are the same."""
    from spikemfm.app.jobs import ConvertJob, is_model_file, run_convert

    if is_model_file(model):
        return Path(model)
    folder = out / ".partial" / "model"
    wanted = json.dumps({"model": model, **{k: v for k, v in source.items() if v is not None}}, sort_keys=True)
    stamp = folder / "source.json"
    if world.main and not (stamp.exists() and stamp.read_text() == wanted and (folder / "model.snn.pt").exists()):
        from spikemfm.core.io import atomic_write_text

        shutil.rmtree(folder, ignore_errors=True)
        fields_ = {k: v for k, v in source.items() if v is not None}
        run_convert(ConvertJob(model=model, timesteps=1, eval_samples=1, **fields_, out=str(folder)), progress)
        atomic_write_text(stamp, wanted)
    distributed.barrier(world)
    return folder / "model.snn.pt"


def run_evaluate(model: str, cfg: EvalConfig, out: str | Path, source: dict[str, Any] | None = None,
                 progress: bool = True) -> list[dict[str, Any]] | None:
    """Evaluates ``model`` (a saved ``model.snn.pt`` or a model name, converted with ``source``'s ConvertJob
    fields) on ``cfg``; under ``torchrun`` every rank takes its share. Rank 0 writes the results into ``out`` and
    returns the rows; other ranks return None."""
    from spikemfm.core.io import check_out_dir

    out = check_out_dir(out)
    world = distributed.start(cfg.device)
    try:
        with _resume_lock(out, world):
            return _evaluate(model, cfg, out, source, progress, world)
    finally:
        distributed.finish(world)


def _resume_lock(out: Path, world: distributed.World) -> contextlib.AbstractContextManager:
    """One job at a time may use ``OUT/.partial`` (its main process holds the lock; the job's other ranks share
    the folder with it): a second run on the same ``--out`` is refused at once, naming the holder's pid, so resumable
    records are never written by two jobs (each record is written atomically; records are keyed by batch index,
    so none is counted twice)."""
    from spikemfm.core.io import folder_lock

    if not world.main:
        return contextlib.nullcontext()
    return folder_lock(out / ".partial", "evaluating into it (its resumable records)", wait_s=0)


def _evaluate(model: str, cfg: EvalConfig, out: Path, source: dict[str, Any] | None, progress: bool,
              world: distributed.World) -> list[dict[str, Any]] | None:
    """The body of :func:`run_evaluate` on one rank."""
    from spikemfm.convert.qann import QuantizedModel
    from spikemfm.core.io import file_sha256, output_set, save_table
    from spikemfm.app.jobs import load_saved
    from spikemfm.snn import simulate
    from spikemfm.snn.device import to_device

    cfg = replace(cfg, device=distributed.device_for(world, cfg.device))
    path = _model_file(model, source or {}, out, world, progress and world.main)
    snn, tokenizer, job, spec = load_saved(path)
    data = load_eval_data(cfg.data, snn.graph, spec, tokenizer, cfg.inputs, cfg.batch_size, job.data)
    template = simulate(snn, _first(data.batches[0]), 1)
    score = class_scores(job, template.outputs.shape[-1], data.labels)
    where = cfg.device or "cpu"
    qann = to_device(QuantizedModel(snn.graph, snn.qparams, snn.quant_config), where)
    snn = to_device(snn, where)
    folder = out / ".partial" / fingerprint(path, cfg)
    mine = _records(snn, qann, data, score, cfg, folder, world, progress and world.main)
    gathered = {i: r for part in distributed.gather(world, mine) for i, r in part.items()}
    if not world.main:
        return None
    tot = total(gathered)
    agg = aggregate_sim(template, tot)
    rows = result_rows(tot, agg, cfg, score is not None)
    config = {"model": model, "model_file": str(path), "model_sha256": file_sha256(path), **asdict(cfg),
              "processes": world.size,
              "data_note": data.note, "graph": snn.graph.name, "bits": snn.quant_config.bits,
              "max_spikes_per_step": snn.config.max_spikes_per_step}
    with output_set(out) as stage:
        save_table(stage, "evaluate", rows, config, f"evaluate {model}: accuracy / cosine against T")
        save_table(stage, "layers", layer_rows(agg), config, f"evaluate {model}: per-layer spikes at T={cfg.t_max}")
    shutil.rmtree(out / ".partial", ignore_errors=True)  # complete: nothing left to resume
    return rows


def _first(batch: Any) -> Any:
    """The first input of a batch (a tensor or a tokenizer mapping)."""
    if isinstance(batch, torch.Tensor):
        return batch[:1]
    return {k: v[:1] for k, v in batch.items()}

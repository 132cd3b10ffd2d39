"""The jobs behind ``spikemfm convert`` and ``spikemfm simulate``: config, real data, and the library calls.

A job is a frozen config read from a TOML file (keys = field names) with command-line overrides;
unknown keys and invalid values raise :class:`~spikemfm.errors.ConfigError` naming the file and field.
Calibration uses real data (:mod:`spikemfm.app.data`): the user's ``data`` (an image folder or a text file), or
Fashion-MNIST training images fitted to the tower's input spec (its own size, channels and normalisation, said in
the summary) / real sentences (Debian fortunes-min).
"""
from __future__ import annotations

import contextlib
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
import torch.nn.functional as F

from spikemfm.core.checks import check_field_types
from spikemfm.core.config_files import select_keys, split_config
from spikemfm.app import DataSource, InputSpec, input_spec, real_batches
from spikemfm.errors import ConfigError, DataError, ModelLoadError

if TYPE_CHECKING:
    from spikemfm.convert import MixedPrecisionConfig, QuantConfig

TOWERS = ("image", "text")


@dataclass(frozen=True)
class ConvertJob:
    """What ``spikemfm convert`` does.

    Attributes:
        model: a :func:`spikemfm.load` name (``tiny-clip-fmnist``, ``minilm``, ``timm:…``, ``open_clip:…``, ``hf:…``).
        tower: ``image`` or ``text`` for two-tower models (CLIP).
        checkpoint: local weights file (timm) or open_clip checkpoint / pretrained tag.
        bits: uniform bits (ignored when ``budget`` is set).
        budget: average bits for mixed precision (None: uniform ``bits``).
        energy_budget: spike-driven energy per input (nJ) the activations may cost on ``energy_profile``: mixed
            precision whose activation bits minimise distortion under that energy (weights under ``budget``, 6
            bits when unset); the summary's ``allocation`` reports the predicted energy.
        energy_profile: hardware profile of ``energy_budget`` (name or TOML file).
        head_ratio, mlp_ratio: fractions of heads / MLP channels to prune (0: no pruning).
        recovery_steps: distillation steps after pruning (0: none).
        qat_steps: quantization-aware training steps after quantizing (0: none; :func:`spikemfm.qat` on the
            calibration data, distilled from the float model).
        max_spikes: spikes per neuron per step: a positive integer, or ``"graded"`` (no bound).
        timesteps: steps simulated for the summary's exactness check.
        calib_samples: real calibration samples (images or sentences).
        eval_samples: real test samples simulated for the summary.
        model_args: (option, value) pairs passed to the model's factory (timm ``img_size``, ``num_classes``,
            ``depth``, ...; open_clip ``vision_cfg``); a TOML table ``[model_args]``.
        data: an image folder or a text file of sentences to calibrate and evaluate on (default: Fashion-MNIST
            / real sentences); calibration takes the even-numbered items, evaluation the odd-numbered ones.
        out: output folder (``model.snn.pt`` + ``summary.json``).
    """

    model: str = "tiny-clip-fmnist"
    tower: str = "image"
    checkpoint: str | None = None
    bits: int = 8
    budget: float | None = None
    energy_budget: float | None = None
    energy_profile: str = "loihi2"
    head_ratio: float = 0.0
    mlp_ratio: float = 0.0
    recovery_steps: int = 0
    qat_steps: int = 0
    max_spikes: int | str = 16
    timesteps: int = 32
    calib_samples: int = 256
    eval_samples: int = 16
    data: str | None = None
    model_args: tuple[tuple[str, Any], ...] = ()
    out: str = "results/convert_cli"

    def __post_init__(self) -> None:
        check_field_types(self)
        DataSource(self.data)  # fails on a path that does not exist, before any model loads
        args = self.model_args.items() if isinstance(self.model_args, dict) else self.model_args
        try:  # a TOML table, saved JSON lists or pairs: one canonical form
            pairs = tuple((str(k), v) for k, v in args)
        except (TypeError, ValueError):
            raise ConfigError(f"ConvertJob.model_args={self.model_args!r}: give option = value pairs") from None
        object.__setattr__(self, "model_args", pairs)
        if self.tower not in TOWERS:
            raise ConfigError(f"ConvertJob.tower={self.tower!r}: choose one of {TOWERS}")
        for name in ("recovery_steps", "qat_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ConvertJob.{name}={getattr(self, name)}: must be >= 0")
        if self.max_spikes != "graded" and (isinstance(self.max_spikes, bool) or not isinstance(self.max_spikes, int)
                                            or self.max_spikes < 1):
            raise ConfigError(f"ConvertJob.max_spikes={self.max_spikes!r}: give a positive integer or 'graded'")
        for name in ("timesteps", "calib_samples", "eval_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ConvertJob.{name}={getattr(self, name)}: must be >= 1")
        if self.energy_budget is not None or self.budget is not None:
            try:  # budgets and profile checked now, before any model loads
                self.quant_config()
            except ConfigError as e:
                raise ConfigError(f"ConvertJob: {e}") from None


    def quant_config(self) -> QuantConfig | MixedPrecisionConfig:
        """Uniform ``bits``, or mixed precision under ``budget`` bits and/or ``energy_budget`` nJ."""
        from spikemfm.convert import MixedPrecisionConfig, QuantConfig

        if self.energy_budget is not None:
            return MixedPrecisionConfig(budget=self.budget if self.budget is not None else 6.0,
                                        energy_budget_nj=self.energy_budget, energy_profile=self.energy_profile)
        return MixedPrecisionConfig(budget=self.budget) if self.budget is not None else QuantConfig(bits=self.bits)

    @property
    def spikes_per_step(self) -> int | None:
        """``max_spikes`` as :class:`~spikemfm.convert.ConvertConfig` takes it (None: graded)."""
        return None if self.max_spikes == "graded" else int(self.max_spikes)


def job_from_toml(path: str | Path | None, overrides: dict[str, Any], elsewhere: set[str] = frozenset(),
                  commands: Sequence[str] = ()) -> ConvertJob:
    """A :class:`ConvertJob` from a TOML file (optional) with ``overrides`` (None values ignored) on top.

    The file holds ConvertJob fields at the top level or in a ``[convert]`` table; ``elsewhere``: keys that other
    commands of a shared file take (skipped at the top level); ``commands``: the other commands, whose tables are
    skipped (the CLI passes its parser's command names).
    """
    values: dict[str, Any] = {}
    known = {f.name for f in fields(ConvertJob)}
    if path is not None:
        top, own = split_config(path, "convert", ("convert", *commands))
        values = select_keys(path, "convert", top, own, known, set(elsewhere))
    flags = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(values.get("model_args"), dict) and "model_args" in flags:  # flags add to / win over the table
        flags["model_args"] = {**values["model_args"], **dict(flags["model_args"])}
    values.update(flags)
    try:
        return ConvertJob(**values)
    except ConfigError as exc:  # name the file when the bad field came from it, not from a flag
        field = str(exc).partition("=")[0].rpartition(".")[2]
        raise ConfigError(f"config file {path}: {exc}" if path is not None and field not in flags else str(exc)) \
            from None


def load_tower(job: ConvertJob) -> tuple[Any, Any]:
    """(tower module, tokenizer or None) of the job's model."""
    from spikemfm.models import load

    is_clip = job.model == "tiny-clip-fmnist" or job.model.startswith("open_clip:")
    kwargs: dict[str, Any] = {}
    if job.checkpoint is not None:
        if not Path(job.checkpoint).is_file() and not job.model.startswith("open_clip:"):
            raise ModelLoadError(f"checkpoint {job.checkpoint}: no such file")
        kwargs = {"pretrained": job.checkpoint} if job.model.startswith("open_clip:") else {"checkpoint": job.checkpoint}
    model = load(job.model, **kwargs, **dict(job.model_args))
    if not is_clip:
        return model, getattr(model, "tokenize", None)
    if job.model == "tiny-clip-fmnist":
        return (model.visual, None) if job.tower == "image" else (model.text, model.text.tokenize)
    if job.tower == "image":
        return model.visual, None
    import open_clip

    from spikemfm.ir import OpenClipTextTower

    return OpenClipTextTower(model), open_clip.get_tokenizer(job.model.partition(":")[2])


def weights_of(job: ConvertJob) -> str:
    """What weights the job's model has: ``random-init`` where no checkpoint or pretrained source is given."""
    if job.model.startswith(("timm:", "open_clip:")) and job.checkpoint is None:
        return "random-init (no --checkpoint): the conversion is exact, but of an untrained model"
    if job.checkpoint is not None:
        return f"checkpoint {job.checkpoint}"
    return "pretrained (bundled or local)"


def run_convert(job: ConvertJob, progress: bool = True) -> dict[str, Any]:
    """Loads, (prunes,) quantizes and converts the job's tower; saves it and returns the summary."""
    from spikemfm.convert import ConvertConfig, PruneConfig, QATConfig, distill, prune, qat, quantize
    from spikemfm.snn import convert
    from spikemfm.convert.qann import as_graph
    from spikemfm.core.io import check_out_dir, file_sha256, output_set, write_json
    from spikemfm.core.provenance import provenance
    from spikemfm.snn.serialize import save_converted
    from spikemfm.snn import simulate
    from spikemfm.models.causal import is_causal_name

    if is_causal_name(job.model):
        from spikemfm.lm.saved import convert_lm

        return convert_lm(job, progress)
    check_out_dir(job.out)  # before any work: a bad --out must not cost a conversion
    tower, tokenizer = load_tower(job)
    graph = as_graph(tower)
    spec = input_spec(tower, graph) if graph.input_kind == "image" else None
    data = DataSource(job.data)
    calib, calib_note = real_batches(graph, spec, tokenizer, "train", job.calib_samples, 64, data)
    model: Any = tower
    if job.head_ratio or job.mlp_ratio:
        model = prune(tower, PruneConfig(head_ratio=job.head_ratio, mlp_ratio=job.mlp_ratio), calib)
        if job.recovery_steps:
            distill(model, tower, calib, steps=job.recovery_steps, lr=5e-5 if graph.input_kind == "tokens" else 5e-4,
                    progress=progress)
    qcfg = job.quant_config()
    qann = quantize(model, qcfg, calib, progress=progress)
    if job.qat_steps:
        qann = qat(qann, calib, config=QATConfig(steps=job.qat_steps), progress=progress)
    snn = convert(qann, ConvertConfig(max_spikes_per_step=job.spikes_per_step))
    batches, eval_note = real_batches(graph, spec, tokenizer, "test", job.eval_samples, job.eval_samples, data)
    x = batches[0]
    res, ref = simulate(snn, x, job.timesteps), qann(x)
    out = Path(job.out)
    summary = {**provenance(asdict(job)), "file": str(out / "model.snn.pt"), "graph": qann.graph.name,
               "weights": weights_of(job), "calibration_data": calib_note, "evaluation_data": eval_note,
               "input": spec.as_dict() if spec is not None else None,
               "params": sum(ql.w_int.numel() for ql in qann.qparams.linears.values()),
               "weight_bytes": sum(ql.total_bits for ql in qann.qparams.linears.values()) / 8,
               "neurons_per_input": res.total_neurons(), "spikes_per_input": res.total_spikes() / res.batch_size,
               "t_exact": res.t_exact(ref), "max_rel_error_at_T": float(res.max_error(ref)[-1] / ref.abs().max()),
               "qann_vs_module_cosine": _cosine_vs_module(tower, graph, ref, x),
               "graph_vs_module_rel_l2": qann.fidelity.output_error if qann.fidelity is not None else None}
    # one set: the model, its bit report and its summary appear together or not at all (summary.json last)
    with output_set(out) as stage:
        if qann.allocation is not None:
            summary["allocation"] = qann.allocation.summary
            qann.allocation.save(stage)
        save_converted(snn, stage / "model.snn.pt", {"job": asdict(job), "input": summary["input"]})
        summary["model_sha256"] = file_sha256(stage / "model.snn.pt")  # binds the summary to this very file
        write_json(stage / "summary.json", summary)
    return summary


def _cosine_vs_module(tower: Any, graph: Any, out: Any, x: Any) -> float:
    """Mean cosine of ``out`` with the user's own float module on ``x`` (not the library's graph of it)."""
    from spikemfm.ir import as_inputs, extractor_for

    with torch.no_grad():
        ref = extractor_for(tower).reference(tower, as_inputs(graph, x))
    return float(F.cosine_similarity(out, ref.to(out.dtype), dim=-1).mean())


def is_model_file(model: str) -> bool:
    """Whether ``model`` names a saved model file (``*.pt`` or an existing file) rather than a model name."""
    return model.endswith(".pt") or Path(model).is_file()


@contextlib.contextmanager
def model_file_for(model: str, source: dict[str, Any], progress: bool = False) -> Iterator[Path]:
    """A saved model for ``model``: the file itself when it names one, else the model name converted (with the
    :class:`ConvertJob` fields in ``source``: tower, checkpoint, bits, max_spikes, model_args, data, ...) into a
    temporary folder that lives as long as the ``with`` block."""
    if is_model_file(model):
        yield Path(model)
        return
    with tempfile.TemporaryDirectory(prefix="spikemfm-model-") as tmp:
        fields_ = {k: v for k, v in source.items() if v is not None}
        job = ConvertJob(model=model, timesteps=1, eval_samples=1, **fields_, out=tmp)
        run_convert(job, progress=progress)
        yield Path(tmp) / "model.snn.pt"


def load_saved(model_file: str | Path) -> tuple[Any, Any, ConvertJob, InputSpec | None]:
    """A model written by ``spikemfm convert``: (SpikingModel, tokenizer or None, the job that made it, the
    input spec of an image tower). The metadata is validated like a config; a text tower's tokenizer is read
    from local files only, with the hub switched off: a model file never makes spikemfm fetch what it names."""
    from spikemfm.snn.serialize import load_converted

    snn, meta = load_converted(model_file)
    known = {f.name for f in fields(ConvertJob)}
    try:
        saved = meta.get("job", {})
        if not isinstance(saved, dict):
            raise ConfigError(f"meta.job is a {type(saved).__name__}, not a table")
        job = replace(ConvertJob(), **{k: v for k, v in saved.items() if k in known})
        spec = InputSpec.from_dict(meta["input"]) if meta.get("input") else None
    except (ConfigError, TypeError, KeyError, ValueError) as exc:
        raise ModelLoadError(f"converted model {model_file}: invalid metadata ({exc}); convert the model again") \
            from None
    tokenizer = None
    if snn.graph.input_kind == "tokens":
        try:
            tokenizer = saved_tokenizer(job)
        except ModelLoadError as exc:
            raise ModelLoadError(f"converted model {model_file}: its tokenizer ({job.model}) is not available "
                                 f"offline: {exc}") from None
    return snn, tokenizer, job, spec


def saved_tokenizer(job: ConvertJob) -> Any:
    """The tokenizer of a saved text tower, without building the model and without the network."""
    from spikemfm.models.offline import hub_offline

    from spikemfm.models.causal import is_causal_name, load_tokenizer

    if is_causal_name(job.model):
        with hub_offline():
            return load_tokenizer(job.model)
    max_length = int(dict(job.model_args).get("max_length", 64))
    if job.model.startswith("hf:") or job.model in ("minilm", "all-MiniLM-L6-v2"):
        from spikemfm.models.text import load_hf_tokenizer, minilm_path

        return load_hf_tokenizer(minilm_path() if not job.model.startswith("hf:") else job.model[3:], max_length)
    if job.model == "tiny-clip-fmnist":
        from spikemfm.models.tiny_clip import load_tiny_clip

        return load_tiny_clip().text.tokenize
    if job.model.startswith("open_clip:"):
        from spikemfm.models._compat import import_open_clip
        from spikemfm.models.sources import short_error

        open_clip = import_open_clip()
        try:
            with hub_offline():
                return open_clip.get_tokenizer(job.model.partition(":")[2])
        except Exception as exc:  # the hub client's OfflineModeIsEnabled, OSError of a missing cache entry, ...
            raise ModelLoadError(short_error(exc)) from exc
    raise ModelLoadError(f"model {job.model!r} has no text tokenizer")


def saved_test_inputs(model_file: str | Path, n_inputs: int, saved: tuple | None = None) -> tuple[Any, Any, ConvertJob]:
    """(SpikingModel, one batch of ``n_inputs`` real test inputs for it, its job) of a saved model, from the data
    it was converted with (its evaluation half); ``saved``: what :func:`load_saved` already returned for it."""
    snn, tokenizer, job, spec = saved if saved is not None else load_saved(model_file)
    batches, note = real_batches(snn.graph, spec, tokenizer, "test", n_inputs, n_inputs, DataSource(job.data))
    x = batches[0]
    got = int((x if isinstance(x, torch.Tensor) else x["input_ids"]).shape[0])
    if got < n_inputs:
        raise DataError(f"{model_file}: {n_inputs} test inputs asked, {got} available ({note})")
    return snn, x, job


def run_simulate(model_file: str | Path, n_inputs: int, timesteps: int, out: str | Path) -> list[dict[str, Any]]:
    """Reloads a converted model, simulates real test inputs and writes per-step rows (JSON + CSV + MD)."""
    from spikemfm.core.io import check_out_dir, file_sha256, output_set, save_table
    from spikemfm.snn import simulate

    check_out_dir(out)
    snn, x, _ = saved_test_inputs(model_file, n_inputs)
    qann_out = torch_qann(snn, x)
    res = simulate(snn, x, timesteps)
    err = res.max_error(qann_out) / qann_out.abs().max()
    rows = [{"T": t + 1, "max_rel_error_vs_qann": float(err[t]),
             "spikes_per_input": float(sum(v.spikes[t] for v in res.neuron_stats.values()) / res.batch_size)}
            for t in range(timesteps)]
    with output_set(out) as stage:
        save_table(stage, "simulate", rows, {"model_file": str(model_file), "model_sha256": file_sha256(model_file),
                                             "n_inputs": n_inputs, "timesteps": timesteps}, f"simulate {model_file}")
    return rows


def run_energy_saved(model_file: str | Path, profiles: list[Any], n_inputs: int, timesteps: int,
                     adaptive: bool = False, saved: tuple | None = None) -> tuple[list[Any], Any]:
    """(energy reports, one per profile, the simulation they price) of a saved model simulated on ``n_inputs``
    real test inputs (``adaptive``: each input stops at its first quiet step, T the cap; ``saved``: the file
    already loaded by :func:`load_saved`)."""
    from spikemfm.energy import counts_updates, estimate_energy
    from spikemfm.snn import simulate

    snn, x, _ = saved_test_inputs(model_file, n_inputs, saved)
    sim = simulate(snn, x, timesteps, adaptive=adaptive, count_updates=counts_updates(profiles))
    return [estimate_energy(sim, p) for p in profiles], sim


def torch_qann(snn, x: Any):
    """The QANN output of a converted model (its exactness reference)."""
    from spikemfm.convert.qann import QuantizedModel

    return QuantizedModel(snn.graph, snn.qparams, snn.quant_config)(x)


# The Lava agreement job (run in an isolated worker by `spikemfm lava` and the Lava benchmark).
AGREEMENT_MODELS = ("tiny-clip-image", "minilm")


def agreement_depth(model: str) -> int:
    """Blocks of a bundled agreement model, read from its graph (no calibration or conversion)."""
    from spikemfm.convert.qann import as_graph

    if model == "tiny-clip-image":
        from spikemfm.models.tiny_clip import load_tiny_clip

        return len(as_graph(load_tiny_clip().visual).blocks)
    if model == "minilm":
        from spikemfm.models.text import load_minilm

        return len(as_graph(load_minilm()).blocks)
    raise ConfigError(f"agreement model {model!r}: choose one of {AGREEMENT_MODELS}")


def converted_model(model: str, n_inputs: int, bits: int, max_spikes: int | None, seed: int) -> tuple[Any, Any]:
    """A converted real model and a batch of real inputs (Fashion-MNIST test images / fortunes sentences).

    ``model`` is one of :data:`AGREEMENT_MODELS` (converted here with ``bits`` / ``max_spikes``) or a file
    written by ``spikemfm convert`` (used as saved; ``bits`` and ``max_spikes`` do not apply).
    """
    if model not in AGREEMENT_MODELS:
        snn, inputs, _ = saved_test_inputs(model, n_inputs)
        return snn, inputs
    from spikemfm.convert import ConvertConfig, QuantConfig, quantize
    from spikemfm.data import load_fashion_mnist, load_sentences
    from spikemfm.models.text import load_minilm
    from spikemfm.models.tiny_clip import load_tiny_clip
    from spikemfm.app.tiny_clip import calibration_images
    from spikemfm.snn import convert

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
    from spikemfm.neuromorphic.export import PRECISIONS
    from spikemfm.neuromorphic.fixed import FixedPointConfig
    from spikemfm.neuromorphic.parts import Part
    from spikemfm.neuromorphic.verify import check_agreement

    for p in precisions:
        if p not in PRECISIONS:
            raise ValueError(f"precision {p!r}: choose from {PRECISIONS}")
    snn, inputs = converted_model(model, n_inputs, bits, max_spikes, seed)
    fixed = FixedPointConfig(frac_bits=frac_bits)
    return [asdict(check_agreement(snn, inputs, Part(kind, block), timesteps, precision, fixed))
            for kind, block in parts for precision in precisions]

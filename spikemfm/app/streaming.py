"""A stream, measured and priced: tracking of the QANN, spikes and energy per frame against two dense paths.

Used by ``spikemfm stream`` and ``experiments/streaming.py``. For a QANN, a spike mode and a steps-per-frame
policy, :func:`stream_report` runs :func:`~spikemfm.snn.stream.simulate_stream` over the frames and returns

- per frame: steps, unit spikes, messages, whether it settled, the error against the QANN on that frame (relative
  max error, cosine, top-1 agreement of ``classify(output)``), and per profile the SNN's energy, the dense int8 and
  bit-matched energy of recomputing the frame, and the dense delta baseline (:mod:`spikemfm.energy.delta`);
- a summary: the means over frames after the first (the stream's steady state), the first frame's figures, the
  ratio of later to first-frame spikes, and per profile the break-even share of changed input patches.

Break-even: a frame nothing changed in still costs the SNN one quiet step (every neuron updated once, no spike):
E₀, measured by repeating the last frame. Taking the SNN's energy as E₀ plus a part proportional to the share c of
changed input patches (fitted through the stream's mean), E(c) = E₀ + (Ē − E₀)·c / c̄, the SNN matches a dense path
of energy D at c* = c̄·(D − E₀)/(Ē − E₀) (None when even E₀ ≥ D: the SNN loses on a still scene). A linear model,
stated as such.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Callable

import torch
import torch.nn.functional as F

from spikemfm.convert import ConvertConfig
from spikemfm.snn import convert
from spikemfm.energy import Profile, counts_updates, dense_energy, estimate_energy, load_profile
from spikemfm.energy.delta import INPUT, delta_shares, dense_delta_energy
from spikemfm.errors import ConfigError, DataError
from spikemfm.snn.stream import simulate_stream


def video_inputs(video: str, spec, frames: int, stride: int = 1, batch: int = 1) -> tuple[torch.Tensor, list[str]]:
    """Real video frames as a stream for an image tower of input ``spec`` (:class:`~spikemfm.app.InputSpec`):
    (F, batch, C, size, size), grey or RGB as the tower takes, normalised like its training data; ``batch`` > 1
    puts consecutive stretches of the video side by side (frame f of stream b is video frame b·F + f)."""
    from spikemfm.app.data import fit_images
    from spikemfm.data import video_frames

    raw = video_frames(video, spec.size, gray=spec.channels == 1, max_frames=frames * batch, stride=stride)
    if len(raw) < frames * batch:
        raise DataError(f"video {video!r}: {len(raw)} frames decoded at stride {stride}, {frames * batch} needed")
    x, notes = fit_images(raw, spec)
    return x.reshape(batch, frames, *x.shape[1:]).transpose(0, 1).contiguous(), notes


STREAM_MODELS = ("tiny-clip", "vit96", "vit-b16")


def stream_model(name: str, bits: int, video: str) -> tuple[Any, Callable, Any]:
    """(QANN, classify, input spec) of a tower to stream ``video`` through, at ``bits``:

    - ``tiny-clip``: the bundled tiny CLIP's image tower (28×28 grey), calibrated on Fashion-MNIST training
      images; ``classify`` is its zero-shot top-1 over the class prompts.
    - ``vit96``: timm ``vit_tiny_patch16_224`` at 96×96 RGB, depth 6, random-init (no ViT weights offline);
    - ``vit-b16``: timm ``vit_base_patch16_224`` at 224×224, random-init (its shapes set the system's cost).
    The ViTs are calibrated on frames of the *other* videos; ``classify`` is the argmax of their head."""
    import spikemfm
    from spikemfm.app import input_spec
    from spikemfm.convert import QuantConfig, quantize
    from spikemfm.convert.qann import as_graph
    from spikemfm.data import VIDEOS

    if name not in STREAM_MODELS:
        raise ConfigError(f"stream model {name!r}: choose one of {', '.join(STREAM_MODELS)}")
    if name == "tiny-clip":
        from spikemfm.app.tiny_clip import calibration_images, classifier_from_embeddings, prompts
        from spikemfm.models.tiny_clip import load_tiny_clip

        model = load_tiny_clip()
        with torch.no_grad():
            clf = classifier_from_embeddings(model.text.encode(prompts())).double()
        qann = quantize(model.visual, QuantConfig(bits=bits), calibration_images(256))
        return qann, (lambda out: (F.normalize(out.double(), dim=-1) @ clf.T).argmax(-1)), \
            input_spec(model.visual, qann.graph)
    torch.manual_seed(0)
    kw = dict(img_size=96, depth=6) if name == "vit96" else {}
    model = spikemfm.load(f"timm:vit_{'tiny' if name == 'vit96' else 'base'}_patch16_224", num_classes=10,
                          **kw).eval()
    spec = input_spec(model, as_graph(model))
    frames = 24 if name == "vit96" else 8
    calib = [torch.cat([video_inputs(v, spec, frames, stride=2)[0][:, 0] for v in VIDEOS if v != video])]
    return quantize(model, QuantConfig(bits=bits), calib), (lambda out: out.argmax(-1)), spec


def _tracking(out: torch.Tensor, ref: torch.Tensor, classify: Callable | None) -> dict:
    scale = float(ref.abs().max().clamp_min(1e-12))
    row = {"rel_error": float((out - ref).abs().max()) / scale,
           "cosine": float(F.cosine_similarity(out.reshape(len(out), -1).double(), ref.reshape(len(ref), -1).double(),
                                               dim=-1).mean())}
    if classify is not None:
        row["top1_agree"] = float(classify(out).eq(classify(ref)).double().mean())
    return row


def _energies(sim, profile: Profile, bits: int, shares: dict) -> dict:
    snn = estimate_energy(sim, profile)
    int8, _ = dense_energy(sim, profile, 8)
    matched, _ = dense_energy(sim, profile, bits)
    delta, _ = dense_delta_energy(sim, profile, bits, shares)
    nj = (lambda v: None if v is None else v / 1e3)  # noqa: E731
    return {"snn_nJ": None if snn.snn_missing else snn.snn_total / 1e3, "dense_int8_nJ": nj(int8),
            f"dense_{bits}bit_nJ": nj(matched), "dense_delta_nJ": nj(delta)}


def stream_report(qann, frames: torch.Tensor, max_spikes: int | None, steps_per_frame: int | str,
                  profiles: list[str | Profile], max_steps: int = 64, classify: Callable | None = None
                  ) -> tuple[list[dict], dict]:
    """(per-frame rows, summary) of one streaming configuration (see the module docstring).

    Args:
        qann: the QANN (its uniform or widest activation bits price the bit-matched dense path).
        frames: (F, B, ...) real frames; F >= 2.
        max_spikes: spikes per neuron per step (None: graded).
        steps_per_frame: int or ``"settle"``.
        profiles: hardware profiles to price on (names, TOML paths or profiles; columns carry their names).
        classify: maps outputs (B, ...) to class indices (top-1 agreement with the QANN), or None.
    """
    bits = max(q.bits for q in qann.qparams.quants.values())
    snn = convert(qann, ConvertConfig(max_spikes_per_step=max_spikes))
    profiles = [load_profile(p) for p in profiles]  # named in the columns by their [profile] name
    count = counts_updates(profiles)
    stream = simulate_stream(snn, frames, steps_per_frame, max_steps, count_updates=count)
    with torch.no_grad():
        refs = [qann(f) for f in frames]
    shares = delta_shares(qann, frames)
    rows = []
    for f in range(stream.frames):
        sim = stream.frame(f)
        row = {"frame": f, "steps": int(stream.steps_used[f]), "settled": bool(stream.settled[f]),
               "spikes": float(stream.frame_spikes[f]) / stream.run.batch_size,
               "messages": float(stream.frame_messages[f]) / stream.run.batch_size,
               "changed_patches": shares[f][INPUT], **_tracking(stream.outputs[f], refs[f], classify)}
        for p in profiles:
            row.update({f"{p.name}:{k}": v for k, v in _energies(sim, p, bits, shares[f]).items()})
        rows.append(row)
    # a frame nothing changed in, after a settled one: one quiet step (fixed-step streams included)
    still = simulate_stream(snn, torch.stack([frames[-1], frames[-1]]), "settle", max_steps,
                            count_updates=count).frame(1)
    return rows, _summary(rows, [p.name for p in profiles], bits,
                          {p.name: estimate_energy(still, p).snn_total / 1e3 for p in profiles})


def _mean(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows]
    return None if any(v is None for v in vals) else sum(vals) / len(vals)


def _summary(rows: list[dict], profiles: list[str], bits: int, still: dict[str, float]) -> dict:
    later = rows[1:]
    out = {"frames": len(rows), "bits": bits, "mean_steps": _mean(later, "steps"),
           "settled_share": sum(r["settled"] for r in rows) / len(rows),
           "exact_share": sum(r["rel_error"] <= 1e-4 for r in rows) / len(rows),
           "mean_cosine": _mean(later, "cosine"), "first_spikes": rows[0]["spikes"],
           "mean_spikes": _mean(later, "spikes"), "mean_messages": _mean(later, "messages"),
           "changed_patches": _mean(later, "changed_patches")}
    out["spikes_later/first"] = out["mean_spikes"] / max(out["first_spikes"], 1e-12)
    if "top1_agree" in rows[0]:
        out["top1_agree"] = _mean(later, "top1_agree")
    for p in profiles:
        snn = _mean(later, f"{p}:snn_nJ")
        out[f"{p}:snn_nJ"] = snn
        out[f"{p}:first_snn_nJ"] = rows[0][f"{p}:snn_nJ"]
        out[f"{p}:still_snn_nJ"] = still[p]
        for k in ("dense_int8_nJ", f"dense_{bits}bit_nJ", "dense_delta_nJ"):
            out[f"{p}:{k}"] = _mean(later, f"{p}:{k}")
        for k in ("dense_int8_nJ", "dense_delta_nJ"):
            out[f"{p}:break_even_vs_{k[:-3]}"] = _break_even(snn, still[p], out[f"{p}:{k}"], out["changed_patches"])
    return out


def _break_even(snn: float | None, still: float, dense: float | None, changed: float | None) -> float | None:
    """c* of the module docstring, or None (the SNN loses even on a still frame, or nothing to extrapolate)."""
    if snn is None or dense is None or changed is None or still >= dense or snn <= still:
        return None
    return min(1.0, changed * (dense - still) / (snn - still))


def run_stream(model_file, video: str, frames: int, steps_per_frame: int | str, profiles: list[str],
               out, max_steps: int = 64, stride: int = 1) -> tuple[list[dict], dict]:
    """``spikemfm stream``: a saved image tower over ``frames`` frames of ``video``; writes ``stream.{json,csv,md}``
    (the summary) and ``frames.{json,csv,md}`` into ``out`` as one set. Returns (frame rows, summary)."""
    from spikemfm.core.io import check_out_dir, file_sha256, output_set, save_table
    from spikemfm.app.jobs import load_saved
    from spikemfm.convert.qann import QuantizedModel

    check_out_dir(out)
    if frames < 2:
        raise ConfigError(f"--frames={frames}: a stream needs at least 2 frames")
    snn, _, job, spec = load_saved(model_file)
    if spec is None:
        raise ConfigError(f"{model_file}: a text tower; streaming runs image towers on video frames")
    x, notes = video_inputs(video, spec, frames, stride)
    qann = QuantizedModel(snn.graph, snn.qparams, snn.quant_config)
    rows, summary = stream_report(qann, x, snn.config.max_spikes_per_step, steps_per_frame, profiles, max_steps)
    config = {"model_file": str(model_file), "model_sha256": file_sha256(model_file), "model": job.model, "video": video, "frames": frames, "stride": stride,
              "steps_per_frame": steps_per_frame, "max_steps": max_steps, "profiles": profiles,
              "max_spikes": job.max_spikes, "input": notes}
    with output_set(out) as stage:
        save_table(stage, "stream", [summary], config, f"stream of {video} through {job.model}: steady state")
        save_table(stage, "frames", rows, config, f"every frame of {video} through {job.model}")
    return rows, summary


def stream_agreement_job(video: str, frames: int, steps_per_frame: int, parts: list[tuple[str, int]],
                         precisions: list[str], bits: int = 8, max_spikes: int | None = 16,
                         frac_bits: int = 16) -> list[dict[str, Any]]:
    """Lava vs PyTorch on a stream: the bundled tiny CLIP's image tower over ``frames`` consecutive real frames
    of ``video`` (normalised like its training data), each held ``steps_per_frame`` steps with every process's
    state kept across frames. Plain dicts, for :func:`~spikemfm.neuromorphic.isolate.run_isolated`."""
    from spikemfm.app import input_spec
    from spikemfm.app.jobs import converted_model
    from spikemfm.models.tiny_clip import load_tiny_clip
    from spikemfm.neuromorphic.fixed import FixedPointConfig
    from spikemfm.neuromorphic.parts import Part
    from spikemfm.neuromorphic.verify import check_agreement

    snn, _ = converted_model("tiny-clip-image", 1, bits, max_spikes, 0)  # the same model as the static agreement
    x, _ = video_inputs(video, input_spec(load_tiny_clip().visual, snn.graph), frames)
    fixed = FixedPointConfig(frac_bits=frac_bits)
    return [asdict(check_agreement(snn, x, Part(kind, block), frames * steps_per_frame, precision, fixed,
                                   steps_per_frame=steps_per_frame))
            for kind, block in parts for precision in precisions]

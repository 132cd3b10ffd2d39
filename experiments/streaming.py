"""Streaming spiking inference on real video: state kept across frames, so only changes spike.

Per video (opencv-doc's vtest: static camera; Megamind: camera motion; tree), model, bits, spike mode and steps per
frame, :func:`spikemfm.app.streaming.stream_report` runs the converted SNN over consecutive frames and prices every
frame on every hardware profile against the dense int8 and bit-matched paths recomputing the frame and the dense
delta baseline (rows whose quantized input did not change are skipped).

Models: the bundled tiny-CLIP image tower on 28×28 grey frames, normalised like its Fashion-MNIST training data
and calibrated on it — trained on Fashion-MNIST, so the metric is agreement with its own QANN (top-1 of its
zero-shot classifier) and the cost, not task accuracy — and a random-init timm ViT (vit_tiny_patch16_224 at 96×96
RGB, 36 patches + class token, depth 6, ImageNet normalisation; random-init stated: no ViT weights exist offline)
calibrated on frames of the *other* two videos.

Writes ``results/stream/stream.{json,csv,md}`` (one row per configuration: the steady-state means over frames after
the first, the first frame's figures, per-profile energies and break-even changed-patch shares),
``frames.{json,csv,md}`` (every frame of every configuration) and ``stream.png`` (spikes and energy per frame with
the dense lines, per video).

Run: ``python experiments/streaming.py`` (``--frames 32`` by default).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tqdm.auto import tqdm

from spikemfm.app.streaming import stream_model, stream_report, video_inputs
from spikemfm.data import VIDEOS
from spikemfm.energy import available_profiles
from spikemfm.core.io import output_set, save_figure, save_table
from spikemfm.core.provenance import add_results_args, results_run

SPIKES = {"graded": None, "binary": 1}


def _configs(args) -> list[tuple[int, str, int | str]]:
    """(bits, spike mode, steps per frame): settle for every bits × mode; the lag of binary spikes at few steps."""
    out = [(b, m, "settle") for b in args.bits for m in SPIKES]
    out += [(min(args.bits), "binary", k) for k in args.few_steps]
    return out


def _merge(cfg: dict, row: dict) -> dict:
    """A configuration and a measured row side by side; a column both hold must agree (one silently overwriting
    the other once turned the spike mode into a spike count)."""
    clash = sorted(k for k in set(cfg) & set(row) if cfg[k] != row[k])
    if clash:
        raise KeyError(f"streaming: configuration and measurement disagree on the columns {clash}")
    return {**cfg, **row}


def run(args) -> tuple[list[dict], list[dict]]:
    summary, frames_out = [], []
    jobs = [(v, m) for v in args.videos for m in args.models]
    for video, model in tqdm(jobs, desc="video x model"):
        for bits, mode, spf in _configs(args):
            qann, classify, spec = stream_model(model, bits, video)
            frames, _ = video_inputs(video, spec, args.frames)
            rows, s = stream_report(qann, frames, SPIKES[mode], spf, args.profiles, args.max_steps, classify)
            cfg = {"video": video, "model": model, "bits": bits, "spike_mode": mode, "steps_per_frame": spf}
            summary.append(_merge(cfg, s))
            frames_out += [_merge(cfg, r) for r in rows]
            print(f"{video:>8} {model:>9} {bits}b {mode:>6} {spf!s:>6}: steps {s['mean_steps']:.2f} exact "
                  f"{s['exact_share']:.2f} spikes later/first {s['spikes_later/first']:.3f} loihi2 "
                  f"{s['loihi2:snn_nJ']:.4g} nJ vs int8 {s['loihi2:dense_int8_nJ']:.4g} / delta "
                  f"{s['loihi2:dense_delta_nJ']:.4g}", flush=True)
    return summary, frames_out


def plot(frames: list[dict], path: Path, profile: str = "loihi2") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    videos = list(dict.fromkeys(r["video"] for r in frames))
    fig, axes = plt.subplots(2, len(videos), figsize=(4.5 * len(videos), 6.5), squeeze=False)
    for j, v in enumerate(videos):
        sel = [r for r in frames if r["video"] == v and r["model"] == "tiny-clip" and r["steps_per_frame"] == "settle"]
        for cfg in dict.fromkeys((r["bits"], r["spike_mode"]) for r in sel):
            rs = [r for r in sel if (r["bits"], r["spike_mode"]) == cfg]
            lab = f"{cfg[0]}-bit {cfg[1]}"
            axes[0, j].plot([r["frame"] for r in rs], [r["spikes"] for r in rs], label=lab)
            axes[1, j].plot([r["frame"] for r in rs], [r[f"{profile}:snn_nJ"] for r in rs], label=f"SNN {lab}")
        base = [r for r in sel if r["spike_mode"] == "graded" and r["bits"] == max(x["bits"] for x in sel)]
        for key, style in (("dense_int8_nJ", "k--"), ("dense_delta_nJ", "k:")):
            axes[1, j].plot([r["frame"] for r in base], [r[f"{profile}:{key}"] for r in base], style,
                            label=key.replace("_nJ", "") + (" (bit-matched)" if "delta" in key else ""))
        axes[0, j].set_title(f"{v}: tiny-CLIP tower, state kept across frames", fontsize=9)
        axes[0, j].set_ylabel("unit spikes per frame")
        axes[1, j].set_ylabel(f"energy per frame on {profile} (nJ)")
        axes[1, j].set_xlabel("frame")
        for ax in axes[:, j]:
            ax.set_yscale("log")
            ax.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", nargs="+", default=list(VIDEOS), choices=list(VIDEOS))
    ap.add_argument("--models", nargs="+", default=["tiny-clip", "vit96"], choices=["tiny-clip", "vit96"])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--bits", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--few-steps", type=int, nargs="*", default=[1, 2, 4], help="binary steps per frame (lag rows)")
    ap.add_argument("--max-steps", type=int, default=64, help="cap of a settling frame")
    ap.add_argument("--profiles", nargs="+", default=available_profiles())
    ap.add_argument("--out", default="results/stream")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    summary, frames = run(args)
    with output_set(Path(args.out)) as stage:
        save_table(stage, "stream", summary, vars(args), "streaming SNN on real video: steady state per "
                   "configuration (means over frames after the first)")
        save_table(stage, "frames", frames, vars(args), "every frame of every streaming configuration")
        plot(frames, stage / "stream.png")
    print(f"wrote {args.out}/stream.{{json,csv,md,png}} and frames.{{json,csv,md}}")


if __name__ == "__main__":
    main()

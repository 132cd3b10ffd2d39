"""System energy per video frame: streaming spiking towers on Loihi 2 chips against a dense int8 accelerator that
recomputes each frame or only its changed rows (delta), with DRAM, batch, static power over the frame period.

Per video (opencv-doc's vtest: static camera; Megamind: camera motion; tree) and tower (:func:`spikemfm.app.
streaming.stream_model`: the bundled tiny-CLIP image tower; random-init ViTs at 96 px / depth 6 and ViT-B/16 at
224 px, calibrated on the other videos' frames), the QANN is converted at ``--bits`` with graded spikes and run
over ``--frames`` consecutive frames, state kept, every frame stepped until it settles (output ≡ QANN). Each
frame after the first is priced by :mod:`spikemfm.energy.system` at each ``--fps``: 0 means the systems sleep
between frames (static power only while computing), a rate means both draw static power for the whole frame
period (a dedicated always-on stream processor). Dense rows: batch ∈ ``--batch`` streams, on-chip buffer
``--onchip-mib`` and the whole model; paths ``dense`` (int8 recompute) and ``dense_delta`` (int8, only the rows
whose input changed). Every dense row carries the SNN's break-even activity. Rows are medians over frames.
Writes results/system_energy_streams/{json,csv,md,png}.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from spikemfm.app.streaming import STREAM_MODELS, stream_model, video_inputs
from spikemfm.convert import ConvertConfig
from spikemfm.core.io import output_set, save_figure, save_table
from spikemfm.core.provenance import add_results_args, results_run
from spikemfm.data import VIDEOS
from spikemfm.energy import counts_updates, estimate_energy, load_profile
from spikemfm.energy.delta import delta_shares, dense_delta_energy
from spikemfm.energy.system import system_medians, system_rows
from spikemfm.snn import convert
from spikemfm.snn.stream import simulate_stream

MIB = 1 << 20


def frame_rows(args, video: str, model: str, systems) -> list[dict]:
    """Every frame after the first, at every frame rate: the system rows of one (video, tower)."""
    profile = load_profile(args.profile)
    qann, _, spec = stream_model(model, args.bits, video)
    frames, _ = video_inputs(video, spec, args.frames)
    snn = convert(qann, ConvertConfig(max_spikes_per_step=None))
    stream = simulate_stream(snn, frames, "settle", args.max_steps, count_updates=counts_updates([profile]))
    shares = delta_shares(qann, frames)
    rows = []
    for f in range(1, stream.frames):
        sim = stream.frame(f)
        rep = estimate_energy(sim, profile)
        delta, _ = dense_delta_energy(sim, profile, args.bits, shares[f])
        ops = {"dense": rep.dense_total["int8"] / 1e3, "dense_delta": None if delta is None else delta / 1e3}
        for fps in args.fps:
            for r in system_rows(sim, rep, systems, model, "frame", frame_s=1 / fps if fps else None,
                                 dense_ops_nj=ops):
                rows.append({**r, "video": video, "fps": fps, "settled": bool(stream.settled[f]),
                             "steps": int(stream.steps_used[f])})
    return rows


def plot(rows: list[dict], path: Path, batch: int, onchip: str) -> None:
    """Energy per frame (log) of the SNN and the two dense paths, per (tower, video), at each frame rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpss = sorted(dict.fromkeys(r["fps"] for r in rows))
    fig, axes = plt.subplots(1, len(fpss), figsize=(6 * len(fpss), 4), squeeze=False)
    for ax, fps in zip(axes[0], fpss):
        cases = list(dict.fromkeys((r["model"], r["video"]) for r in rows))
        for k, (path_, style) in enumerate((("snn", "tab:red"), ("dense", "tab:blue"), ("dense_delta", "tab:cyan"))):
            vals = []
            for m, v in cases:
                sel = [r for r in rows if (r["model"], r["video"], r["fps"], r["path"]) == (m, v, fps, path_)
                       and (path_ == "snn" or (r["batch"], r["onchip"]) == (batch, onchip))]
                vals.append(sel[0]["energy_nj"] / 1e3 if sel and sel[0]["energy_nj"] else 0.0)
            ax.bar([i + (k - 1) * 0.27 for i in range(len(cases))], vals, 0.27, color=style,
                   label=path_ if path_ == "snn" else f"{path_} b={batch} {onchip}")
        ax.set_xticks(range(len(cases)), [f"{m}\n{v}" for m, v in cases], fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("µJ per frame")
        ax.set_title("sleep between frames" if not fps else f"always on, {fps:g} fps", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", nargs="+", default=["vtest", "megamind"], choices=list(VIDEOS))
    ap.add_argument("--models", nargs="+", default=list(STREAM_MODELS), choices=list(STREAM_MODELS))
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--max-steps", type=int, default=64, help="cap of a settling frame")
    ap.add_argument("--profile", default="loihi2")
    ap.add_argument("--fps", type=float, nargs="+", default=[0.0, 30.0], help="0: the systems sleep between frames")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--onchip-mib", type=float, nargs="+", default=[1.0], help="plus the whole model")
    ap.add_argument("--out", default="results/system_energy_streams")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    systems = tuple((b, c) for b in args.batch for c in [*(m * MIB for m in args.onchip_mib), None])
    rows = []
    for model in args.models:
        for video in args.videos:
            print(f"{model} on {video}: {args.frames} frames", flush=True)
            mine = system_medians(frame_rows(args, video, model, systems), "nJ per frame",
                                  ("video", "fps", "path", "profile", "batch", "onchip"), "frames")
            rows += mine
            for r in mine:
                print(f"  fps={r['fps']:<4g} {r['path']:11} b={r['batch']:<2} {r['onchip']:16} "
                      f"E={r['energy_nj']} nJ  x={r.get('break_even_x')}", flush=True)
    with output_set(Path(args.out)) as stage:
        save_table(stage, "system_energy_streams", rows, vars(args), "video streams: system energy per frame (nJ, "
                   f"median over frames after the first), {args.profile} SNN (graded, settle) vs dense int8 "
                   "recompute and delta; break_even_x: SNN activity factor at which it matches the row "
                   "(1000 = wins up to 1000x; empty = loses even silent)")
        plot(rows, stage / "system_energy_streams.png", args.batch[0], f"{args.onchip_mib[0]:g} MiB")
    print(f"wrote {args.out}/system_energy_streams.{{json,csv,md,png}}")


if __name__ == "__main__":
    main()

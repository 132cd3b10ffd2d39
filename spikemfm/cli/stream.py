"""``spikemfm stream``: a saved (or named) image tower run over real video with its state kept across frames."""
from __future__ import annotations

import argparse

from spikemfm.cli.common import MODEL_HELP, add_source, print_rows, source
from spikemfm.errors import ConfigError


def _steps(text: str) -> int | str:
    if text == "settle":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive integer or 'settle'") from None


def run(args: argparse.Namespace, others: dict[str, set[str]]) -> int:
    """Streams real video frames through the model; prints the steady state per profile (80 columns)."""
    from spikemfm.app.streaming import run_stream
    from spikemfm.energy import load_profile
    from spikemfm.core.io import check_out_dir
    from spikemfm.app.jobs import model_file_for

    check_out_dir(args.out)
    for p in args.profile:
        load_profile(p)  # fail fast on a bad profile
    if args.stride < 1:
        raise ConfigError(f"--stride={args.stride}: must be >= 1")
    with model_file_for(args.model, source(args), not args.no_progress) as path:
        rows, s = run_stream(path, args.video, args.frames, args.steps_per_frame, args.profile, args.out,
                             args.max_steps, args.stride)
    print(f"spikemfm stream: {args.video}, {s['frames']} frames, steps/frame {args.steps_per_frame}")
    print(f"  model: {args.model}")
    print(f"  mean steps {s['mean_steps']:.2f}, exact frames {s['exact_share']:.0%}, "
          f"spikes after frame 1 / frame 1 = {s['spikes_later/first']:.3f}")
    nj = (lambda v: "n/a" if v is None else f"{v:.4g}")  # noqa: E731
    print_rows("energy per frame after the first (nJ); break-even = changed-patch share",
                [{"profile": p, "SNN": nj(s[f"{p}:snn_nJ"]), "int8": nj(s[f"{p}:dense_int8_nJ"]),
                  "delta": nj(s[f"{p}:dense_delta_nJ"]), "b-e int8": nj(s[f"{p}:break_even_vs_dense_int8"]),
                  "b-e delta": nj(s[f"{p}:break_even_vs_dense_delta"])} for p in args.profile])
    print(f"wrote {args.out}/stream.{{json,csv,md}} and frames.{{json,csv,md}}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Adds ``spikemfm stream`` and its options."""
    st = sub.add_parser("stream", help="stream real video through a spiking image tower, state kept across "
                        "frames; spikes, exactness and energy per frame vs dense paths")
    st.add_argument("model", nargs="?", default="tiny-clip-fmnist", help=MODEL_HELP)
    st.add_argument("--video", default="vtest", help="vtest, megamind, tree (opencv-doc) or a video file")
    st.add_argument("--frames", type=int, default=32)
    st.add_argument("--stride", type=int, default=1, help="keep every n-th frame of the video")
    st.add_argument("--steps-per-frame", type=_steps, default="settle",
                    help="steps per frame, or 'settle': until no neuron moves (exact on every frame)")
    st.add_argument("--max-steps", type=int, default=64, help="cap of a settling frame")
    st.add_argument("--profile", nargs="+", default=["loihi2", "loihi", "horowitz45", "eyeriss_int8"],
                    help="energy profile names or TOML paths")
    add_source(st, spikes_default="graded")
    st.add_argument("--out", default="results/stream_cli")
    st.add_argument("--config", help="TOML file of this command's options (keys = flag names, at the top level or "
                    "in a [stream] table); flags given on the command line override it")
    st.set_defaults(func=run)

"""``spikemfm demo``: the main job, FP32 → QANN → SNN on real data."""
from __future__ import annotations

import argparse
import sys

from spikemfm.cli.common import add_source, print_rows, source, CONFIG_HELP
from spikemfm.errors import ConfigError


def run(args: argparse.Namespace, others: dict[str, set[str]]) -> int:
    """The main job: FP32 → QANN → SNN on real data, for the bundled tiny CLIP (zero-shot accuracy on
    Fashion-MNIST) or any supported model (judged against its own float module and QANN)."""

    from spikemfm.convert import parse_max_spikes
    from spikemfm.core.io import check_out_dir, output_set, save_table

    check_out_dir(args.out)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size={args.batch_size}: must be >= 1")
    cfg = {k: v for k, v in vars(args).items() if k != "func"}
    if args.model != "tiny-clip-fmnist":
        from spikemfm.app.model_demo import run_model_demo
        from spikemfm.app.jobs import ConvertJob, weights_of

        job = ConvertJob(model=args.model, **{k: v for k, v in source(args).items() if v is not None})
        if weights_of(job).startswith("random-init"):
            print(f"spikemfm demo: warning: {job.model} has {weights_of(job)}", file=sys.stderr)
        n = args.n_snn if args.n_snn is not None else 64
        rows, note = run_model_demo(job, tuple(args.timesteps), n, args.batch_size, progress=not args.no_progress)
        print_rows(f"spikemfm demo: {args.model} ({args.tower if args.model.startswith('open_clip') else 'tower'}"
                    f") on {note}", rows)
        with output_set(args.out) as stage:
            save_table(stage, "demo", rows, cfg, f"spikemfm demo: {args.model}")
        print(f"wrote {args.out}/demo.{{json,csv,md}}")
        return 0
    from spikemfm.app.demo import DemoConfig, run_demo

    n_snn = args.n_snn if args.n_snn is not None else 1000
    dcfg = DemoConfig(n_test=args.n_test, n_snn=min(n_snn, args.n_test), bits=args.bits,
                      max_spikes_per_step=parse_max_spikes(args.max_spikes),
                      timesteps=tuple(args.timesteps), batch_size=args.batch_size, stream_frames=args.stream_frames)
    rows = run_demo(dcfg, progress=not args.no_progress)
    print_rows(f"spikemfm demo: {args.model} zero-shot on Fashion-MNIST test "
                "(image and text towers both spiking in the SNN rows)", rows)
    with output_set(args.out) as stage:
        save_table(stage, "demo", rows, cfg, "spikemfm demo: tiny-clip-fmnist zero-shot")
    print(f"wrote {args.out}/demo.{{json,csv,md}}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Adds ``spikemfm demo`` and its options."""
    demo = sub.add_parser("demo", help="the main job on the bundled tiny-clip-fmnist (zero-shot accuracy) or any "
                          "supported model (FP32 vs QANN vs SNN on real data)")
    demo.add_argument("--model", default="tiny-clip-fmnist", help="tiny-clip-fmnist (default), minilm, timm:<name>, "
                      "open_clip:<arch>, hf:<name-or-folder>")
    add_source(demo, spikes_default="16")
    demo.add_argument("--n-test", type=int, default=10000, help="tiny CLIP: test images for FP32 (max 10000)")
    demo.add_argument("--n-snn", type=int, help="inputs for the QANN and SNN rows (tiny CLIP: 1000 of the "
                      "--n-test images; other models: 64 real test inputs)")
    demo.add_argument("--timesteps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    demo.add_argument("--batch-size", type=int, default=500)
    demo.add_argument("--stream-frames", type=int, default=16, help="tiny CLIP: real video frames (vtest) of the "
                      "streaming row, state kept across frames (0: no streaming row)")
    demo.add_argument("--out", default="results/demo_cli")
    demo.add_argument("--config", help=CONFIG_HELP.format("demo"))
    demo.set_defaults(func=run)

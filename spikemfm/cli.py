"""The ``spikemfm`` command line. It only parses arguments and calls the library API."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from spikemfm.errors import SpikeMFMError


def _cmd_demo(args: argparse.Namespace) -> int:
    """Main job on the embedded default: FP32 zero-shot accuracy on Fashion-MNIST test data."""
    from rich.console import Console
    from rich.table import Table

    from spikemfm.demo import DemoConfig, run_demo

    console = Console()
    cfg = DemoConfig(n_test=args.n_test, n_snn=min(args.n_snn, args.n_test), bits=args.bits,
                     max_spikes_per_step=None if args.max_spikes == "graded" else int(args.max_spikes),
                     timesteps=tuple(args.timesteps), batch_size=args.batch_size)
    rows = run_demo(cfg, progress=not args.no_progress)
    table = Table(title=f"spikemfm demo: {args.model} zero-shot on Fashion-MNIST test "
                        "(image and text towers both spiking in the SNN rows)")
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all sub-commands."""
    parser = argparse.ArgumentParser(prog="spikemfm", description="Convert multimodal transformers "
                                     "(CLIP, ViT, BERT) into exact spiking neural networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the main job on the embedded tiny-clip-fmnist model")
    demo.add_argument("--model", default="tiny-clip-fmnist", choices=["tiny-clip-fmnist"])
    demo.add_argument("--n-test", type=int, default=10000, help="test images for FP32 (max 10000)")
    demo.add_argument("--n-snn", type=int, default=1000, help="of those, images for the QANN and SNN rows")
    demo.add_argument("--bits", type=int, default=8, help="activation and weight bits")
    demo.add_argument("--max-spikes", default="4", help="spikes per neuron per step: an integer or 'graded'")
    demo.add_argument("--timesteps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    demo.add_argument("--batch-size", type=int, default=500)
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (SpikeMFMError, ValueError) as exc:
        print(f"spikemfm {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

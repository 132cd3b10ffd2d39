"""``spikemfm simulate``: real test inputs through a saved (or named) model, step by step."""
from __future__ import annotations

import argparse

from spikemfm.cli.common import add_source, print_rows, source, CONFIG_HELP, MODEL_HELP
from spikemfm.errors import ConfigError


def run(args: argparse.Namespace, others: dict[str, set[str]]) -> int:
    """Reloads a converted model and simulates real test inputs step by step."""
    from spikemfm.core.io import check_out_dir
    from spikemfm.app.jobs import model_file_for, run_simulate

    check_out_dir(args.out)
    if args.inputs < 1 or args.timesteps < 1:
        raise ConfigError(f"--inputs={args.inputs}, --timesteps={args.timesteps}: both must be >= 1")
    with model_file_for(args.model, source(args)) as path:
        rows = run_simulate(path, args.inputs, args.timesteps, args.out)
    print_rows(f"spikemfm simulate: {args.model}", rows[:: max(1, len(rows) // 8)] + rows[-1:])
    print(f"wrote {args.out}/simulate.{{json,csv,md}}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Adds ``spikemfm simulate`` and its options."""
    sm = sub.add_parser("simulate", help="simulate real test inputs on a saved (or named) model, step by step")
    sm.add_argument("model", help=MODEL_HELP)
    add_source(sm, spikes_default="16")
    sm.add_argument("--inputs", type=int, default=16)
    sm.add_argument("--timesteps", "-T", type=int, default=32)
    sm.add_argument("--out", default="results/simulate_cli")
    sm.add_argument("--config", help=CONFIG_HELP.format("simulate"))
    sm.set_defaults(func=run)

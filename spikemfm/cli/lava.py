"""``spikemfm lava``: a part of a converted model run in Lava and checked against the PyTorch SNN."""
from __future__ import annotations

import argparse
import contextlib
import math
import sys

from spikemfm.cli.common import add_source, print_rows, source, CONFIG_HELP, MODEL_HELP
from spikemfm.errors import ConfigError


def run(args: argparse.Namespace, others: dict[str, set[str]]) -> int:
    """Runs a part of a converted real model in Lava (Loihi2SimCfg) and checks it against PyTorch."""

    from spikemfm.convert import parse_max_spikes
    from spikemfm.core.io import check_out_dir, file_sha256, output_set, save_table
    from spikemfm.neuromorphic.isolate import run_isolated
    from spikemfm.neuromorphic.parts import Part
    from spikemfm.app.jobs import agreement_job, model_file_for

    check_out_dir(args.out)
    Part(args.part, args.block)  # fail fast on a bad part
    _check_lava_args(args)
    described = {}  # the model file the table describes, by its SHA-256
    with contextlib.ExitStack() as stack:
        job_model = args.agreement_model if args.model is None else \
            str(stack.enter_context(model_file_for(args.model, source(args))))
        if args.model is not None:  # the block index against the saved model, before the Lava worker starts
            from spikemfm.snn.serialize import load_converted

            Part(args.part, args.block).check(load_converted(job_model)[0].graph)
            described["model_sha256"] = file_sha256(job_model)
        rows = run_isolated(agreement_job, dict(model=job_model, parts=[(args.part, args.block)],
                                                precisions=args.precision, timesteps=args.timesteps,
                                                n_inputs=args.inputs, bits=args.bits,
                                                max_spikes=parse_max_spikes(args.max_spikes), seed=args.seed,
                                                frac_bits=args.frac_bits), timeout_s=args.timeout)
    model = args.model or args.agreement_model
    # short headers: 80 columns (every field is in the files)
    short = [{"precision": r["precision"].removesuffix("_pt"), "procs": r["processes"], "spikes": r["spikes_compared"],
              "mismatch": r["spike_mismatches"], "max|Δout|": r["max_output_diff"],
              "fx/float": r["fixed_vs_float"] if r["fixed_vs_float"] is not None else "-",
              "Lava st/s": r["lava_steps_per_s"], "torch st/s": r["torch_steps_per_s"]} for r in rows]
    print_rows(f"Lava ({', '.join(args.precision)}) vs PyTorch SNN: {model} {args.part} "
                f"{'' if args.part == 'tower' else args.block}, T={args.timesteps}, batch {args.inputs}", short)
    cfg = {**{k: v for k, v in vars(args).items() if k != "func"}, **described}
    with output_set(args.out) as stage:
        save_table(stage, "lava_agreement", rows, cfg, "Lava vs PyTorch SNN agreement and speed")
    bad = [r for r in rows if r["spike_mismatches"] or r["max_output_diff"] > (1e-6 if r["precision"] == "floating_pt" else 0)]
    for r in bad:
        print(f"spikemfm lava: {r['precision']} run DISAGREES: {r['spike_mismatches']} spike mismatches, "
              f"max output difference {r['max_output_diff']:.3g}", file=sys.stderr)
    print(f"wrote {args.out}/lava_agreement.{{json,csv,md}}")
    return 1 if bad else 0


def _check_lava_args(args: argparse.Namespace) -> None:
    """Refuses bad lava options before any conversion (the block index against the bundled models' depth)."""
    for name in ("timesteps", "inputs"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name}={getattr(args, name)}: must be >= 1")
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise ConfigError(f"--timeout={args.timeout}: give a positive number of seconds")
    if args.part != "tower" and args.model is None:
        from spikemfm.app.jobs import agreement_depth

        depth = agreement_depth(args.agreement_model)
        if args.block >= depth:
            raise ConfigError(f"--block={args.block}: {args.agreement_model} has {depth} blocks (0..{depth - 1})")


def add(sub: argparse._SubParsersAction) -> None:
    """Adds ``spikemfm lava`` and its options."""
    lv = sub.add_parser("lava", help="run a converted block / tower in Lava and check it against the PyTorch SNN")
    lv.add_argument("model", nargs="?", help=MODEL_HELP + "; without it --agreement-model")
    lv.add_argument("--agreement-model", choices=["tiny-clip-image", "minilm"], default="tiny-clip-image",
                    help="a bundled model converted here with --bits/--max-spikes")
    lv.add_argument("--part", choices=["mlp", "attention", "block", "tower"], default="block")
    lv.add_argument("--block", type=int, default=0, help="block index (ignored for --part tower)")
    lv.add_argument("--timesteps", "-T", type=int, default=32)
    lv.add_argument("--inputs", type=int, default=2, help="real test images / sentences in the batch")
    add_source(lv, spikes_default="16")
    lv.add_argument("--precision", nargs="+", choices=["floating_pt", "fixed_pt"], default=["floating_pt", "fixed_pt"])
    lv.add_argument("--frac-bits", type=int, default=16, help="fixed point: fractional bits of graded values")
    lv.add_argument("--seed", type=int, default=0)
    lv.add_argument("--timeout", type=float, default=900, help="seconds before the Lava worker is killed")
    lv.add_argument("--out", default="results/lava_cli")
    lv.add_argument("--config", help=CONFIG_HELP.format("lava"))
    lv.set_defaults(func=run)

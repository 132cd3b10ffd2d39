"""The ``spikemfm`` command line. It only parses arguments and calls the library API."""
from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import threading
from typing import Callable, Sequence

from spikemfm.errors import ConfigError, SpikeMFMError


def _cmd_demo(args: argparse.Namespace) -> int:
    """The main job: FP32 → QANN → SNN on real data, for the bundled tiny CLIP (zero-shot accuracy on
    Fashion-MNIST) or any supported model (judged against its own float module and QANN)."""

    from spikemfm.convert import parse_max_spikes
    from spikemfm.io import check_out_dir, output_set, save_table

    check_out_dir(args.out)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size={args.batch_size}: must be >= 1")
    cfg = {k: v for k, v in vars(args).items() if k != "func"}
    if args.model != "tiny-clip-fmnist":
        from spikemfm.app.model_demo import run_model_demo
        from spikemfm.jobs import ConvertJob, weights_of

        job = ConvertJob(model=args.model, **{k: v for k, v in _source(args).items() if v is not None})
        if weights_of(job).startswith("random-init"):
            print(f"spikemfm demo: warning: {job.model} has {weights_of(job)}", file=sys.stderr)
        n = args.n_snn if args.n_snn is not None else 64
        rows, note = run_model_demo(job, tuple(args.timesteps), n, args.batch_size, progress=not args.no_progress)
        _print_rows(f"spikemfm demo: {args.model} ({args.tower if args.model.startswith('open_clip') else 'tower'}"
                    f") on {note}", rows)
        with output_set(args.out) as stage:
            save_table(stage, "demo", rows, cfg, f"spikemfm demo: {args.model}")
        print(f"wrote {args.out}/demo.{{json,csv,md}}")
        return 0
    from spikemfm.demo import DemoConfig, run_demo

    n_snn = args.n_snn if args.n_snn is not None else 1000
    dcfg = DemoConfig(n_test=args.n_test, n_snn=min(n_snn, args.n_test), bits=args.bits,
                      max_spikes_per_step=parse_max_spikes(args.max_spikes),
                      timesteps=tuple(args.timesteps), batch_size=args.batch_size, stream_frames=args.stream_frames)
    rows = run_demo(dcfg, progress=not args.no_progress)
    _print_rows(f"spikemfm demo: {args.model} zero-shot on Fashion-MNIST test "
                "(image and text towers both spiking in the SNN rows)", rows)
    with output_set(args.out) as stage:
        save_table(stage, "demo", rows, cfg, "spikemfm demo: tiny-clip-fmnist zero-shot")
    print(f"wrote {args.out}/demo.{{json,csv,md}}")
    return 0


def _print_rows(title: str, rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    from spikemfm.io import columns

    table = Table(title=title)
    cols = columns(rows)
    for col in cols:
        table.add_column(str(col), overflow="fold")
    for row in rows:
        table.add_row(*(f"{row[c]:.4g}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in cols))
    Console().print(table)


def _cmd_energy(args: argparse.Namespace) -> int:
    """Energy per inference of a saved SNN (or the tiny CLIP's spiking tower) vs dense baselines, per profile."""

    from spikemfm.convert import ConvertConfig, QuantConfig, parse_max_spikes
    from spikemfm.data import load_fashion_mnist
    from spikemfm.energy import counts_updates, estimate_energy, load_profile
    from spikemfm.energy.plot import plot_breakdown
    from spikemfm.io import check_out_dir, output_set, safe_stem, save_table
    from spikemfm.jobs import model_file_for, run_energy_saved
    from spikemfm.models.tiny_clip import load_tiny_clip
    from spikemfm.app.tiny_clip import calibration_images, convert_tiny_clip, prompts
    from spikemfm.snn import simulate

    check_out_dir(args.out)
    if args.images < 1 or args.timesteps < 1:
        raise ConfigError(f"--images={args.images}, --timesteps={args.timesteps}: both must be >= 1")
    if not args.profile:
        raise ConfigError("--profile: give at least one energy profile (a name or a TOML path)")
    profiles = [load_profile(p) for p in args.profile]  # fail fast on a bad profile
    if args.model is not None:
        with model_file_for(args.model, _source(args), not args.no_progress) as path:
            reports = run_energy_saved(path, profiles, args.images, args.timesteps, args.adaptive)
        what = f"{args.model}, T={args.timesteps}"
    else:
        model = load_tiny_clip()
        spikes = parse_max_spikes(args.max_spikes)
        s = convert_tiny_clip(model, QuantConfig(bits=args.bits), ConvertConfig(spikes), calibration_images())
        count = counts_updates(profiles)
        if args.tower == "image":
            x = load_fashion_mnist("test").subset(args.images, seed=0).tensors()[0]
            sim = simulate(s.image, x, args.timesteps, adaptive=args.adaptive, count_updates=count)
        else:
            sim = simulate(s.text, model.text.tokenize(prompts()), args.timesteps, adaptive=args.adaptive,
                           count_updates=count)
        reports = [estimate_energy(sim, p) for p in profiles]
        what = f"tiny-clip {args.tower} tower, {args.bits}-bit, T={args.timesteps}"
    summary = [r.summary() for r in reports]
    # 80 columns: the totals and ratios that answer "does the SNN pay"; every column is in the files
    short = [{"profile": r["profile"], "steps": r["steps"], "SNN nJ": r["snn_nJ"], "SNN/int8": r.get("snn/int8"),
              "SNN/bit-matched": r.get("snn/qann_bitmatched"), "complete": "yes" if r["complete"] == "yes" else "no"}
             for r in summary]
    _print_rows(f"energy per inference, {what}", short)
    out = args.out
    cfg = {k: v for k, v in vars(args).items() if k != "func"}
    with output_set(out) as stage:
        save_table(stage, "energy_summary", summary, cfg, "energy per inference (nJ)")
        for r in reports:  # file names from the profile's sanitised name: a name cannot point outside --out
            stem = safe_stem(r.profile)
            save_table(stage, f"energy_layers_{stem}", r.layer_rows(), cfg, f"per-layer energy (pJ), {r.profile}")
            plot_breakdown(r, stage / f"energy_{stem}.png")
    print(f"wrote {out}/energy_summary.{{json,csv,md}}, per-layer tables and PNG breakdowns")
    return 0


def _cmd_lava(args: argparse.Namespace) -> int:
    """Runs a part of a converted real model in Lava (Loihi2SimCfg) and checks it against PyTorch."""

    from spikemfm.convert import parse_max_spikes
    from spikemfm.io import check_out_dir, output_set, save_table
    from spikemfm.neuromorphic.isolate import run_isolated
    from spikemfm.neuromorphic.parts import Part
    from spikemfm.jobs import agreement_job, model_file_for

    check_out_dir(args.out)
    Part(args.part, args.block)  # fail fast on a bad part
    _check_lava_args(args)
    with contextlib.ExitStack() as stack:
        job_model = args.agreement_model if args.model is None else \
            str(stack.enter_context(model_file_for(args.model, _source(args))))
        if args.model is not None:  # the block index against the saved model, before the Lava worker starts
            from spikemfm.serialize import load_converted

            Part(args.part, args.block).check(load_converted(job_model)[0].graph)
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
    _print_rows(f"Lava ({', '.join(args.precision)}) vs PyTorch SNN: {model} {args.part} "
                f"{'' if args.part == 'tower' else args.block}, T={args.timesteps}, batch {args.inputs}", short)
    cfg = {k: v for k, v in vars(args).items() if k != "func"}
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
        from spikemfm.jobs import agreement_depth

        depth = agreement_depth(args.agreement_model)
        if args.block >= depth:
            raise ConfigError(f"--block={args.block}: {args.agreement_model} has {depth} blocks (0..{depth - 1})")


def _cmd_convert(args: argparse.Namespace) -> int:
    """Loads a model, (prunes,) quantizes and converts it; writes the SNN file and a JSON summary (``run_convert``
    checks ``--out`` before any work)."""
    from spikemfm.jobs import job_from_toml, run_convert, weights_of

    overrides = {k: getattr(args, k) for k in ("model", "tower", "checkpoint", "bits", "budget", "energy_budget",
                                                "energy_profile", "head_ratio",
                                                "mlp_ratio", "recovery_steps", "qat_steps", "max_spikes", "timesteps",
                                                "calib_samples", "eval_samples", "data", "model_args", "out")}
    job = job_from_toml(args.config, overrides, elsewhere=set().union(*_all_options(build_parser()).values()))
    if weights_of(job).startswith("random-init"):
        print(f"spikemfm convert: warning: {job.model} has {weights_of(job)}", file=sys.stderr)
    summary = run_convert(job, progress=not args.no_progress)
    keys = ("graph", "params", "weight_bytes", "neurons_per_input", "spikes_per_input", "t_exact",
            "max_rel_error_at_T", "qann_vs_module_cosine", "graph_vs_module_rel_l2")
    # one field per line: ten columns do not fit 80 characters
    _print_rows(f"spikemfm convert: {job.model} ({summary['graph']}) -> {summary['file']}",
                [{"field": k, "value": summary[k]} for k in keys])
    print(f"wrote {summary['file']} and {job.out}/summary.json")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    """Reloads a converted model and simulates real test inputs step by step."""
    from spikemfm.io import check_out_dir
    from spikemfm.jobs import model_file_for, run_simulate

    check_out_dir(args.out)
    if args.inputs < 1 or args.timesteps < 1:
        raise ConfigError(f"--inputs={args.inputs}, --timesteps={args.timesteps}: both must be >= 1")
    with model_file_for(args.model, _source(args)) as path:
        rows = run_simulate(path, args.inputs, args.timesteps, args.out)
    _print_rows(f"spikemfm simulate: {args.model}", rows[:: max(1, len(rows) // 8)] + rows[-1:])
    print(f"wrote {args.out}/simulate.{{json,csv,md}}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    """Collects every saved results table and plot into one markdown report."""
    from spikemfm.report import build_report

    print(f"wrote {build_report(args.results, args.out)}")
    return 0


def _model_arg(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE in TOML syntax (96, true, "x", [1, 2]); a bare word is a string."""
    import tomllib

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: give KEY=VALUE, e.g. img_size=96")
    try:
        return key.strip(), tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip(), value


_MODEL_HELP = ("a model.snn.pt written by `spikemfm convert`, or a model name (tiny-clip-fmnist, minilm, "
               "timm:<name>, open_clip:<arch>, hf:<name-or-folder>) converted first with the options below")


def _add_source(p: argparse.ArgumentParser, spikes_default: str) -> None:
    """The options that convert a named model (the same as `spikemfm convert`'s), for commands taking one."""
    p.add_argument("--tower", choices=["image", "text"], default="image", help="two-tower models: which tower")
    p.add_argument("--checkpoint", help="local weights file (timm) / open_clip checkpoint or tag")
    p.add_argument("--model-arg", dest="model_args", action="append", type=_model_arg, metavar="KEY=VALUE",
                   help="an option of the model's factory, e.g. img_size=96 (repeatable)")
    p.add_argument("--data", help="an image folder or a text file of sentences (default: Fashion-MNIST / sentences)")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--max-spikes", default=spikes_default, help="spikes per neuron per step: an integer or 'graded'")
    p.add_argument("--calib-samples", type=int, default=256)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _source(args: argparse.Namespace) -> dict[str, object]:
    """ConvertJob fields of a command's model options."""
    return {"tower": args.tower, "checkpoint": args.checkpoint, "model_args": args.model_args, "data": args.data,
            "bits": args.bits, "max_spikes": _spikes_flag(args.max_spikes), "calib_samples": args.calib_samples}


def _spikes_flag(text: str) -> int | str:
    """--max-spikes of convert: a positive integer or 'graded' (validated by ConvertJob)."""
    return text if text == "graded" else int(text) if text.lstrip("-").isdigit() else text


_CONFIG_HELP = ("TOML file of this command's options (keys = flag names, at the top level or in a [{}] table); "
                "flags given on the command line override it")


def _add_convert(sub: argparse._SubParsersAction) -> None:
    cv = sub.add_parser("convert", help="quantize (uniform bits or a mixed-precision budget), optionally prune, "
                        "convert to an SNN and save it")
    cv.add_argument("--config", help="TOML file with ConvertJob fields; flags override it")
    cv.add_argument("--model", help="tiny-clip-fmnist, minilm, timm:<name>, open_clip:<arch>, hf:<name-or-folder>")
    cv.add_argument("--tower", choices=["image", "text"])
    cv.add_argument("--checkpoint", help="local weights file (timm) / open_clip checkpoint or tag")
    cv.add_argument("--bits", type=int)
    cv.add_argument("--budget", type=float, help="average bits: mixed precision instead of uniform --bits")
    cv.add_argument("--energy-budget", type=float, metavar="NJ",
                    help="spike-driven energy per input (nJ) on --energy-profile: activation bits chosen to minimise "
                    "distortion under it (mixed precision)")
    cv.add_argument("--energy-profile", help="hardware profile of --energy-budget (default loihi2)")
    cv.add_argument("--head-ratio", type=float)
    cv.add_argument("--mlp-ratio", type=float)
    cv.add_argument("--recovery-steps", type=int)
    cv.add_argument("--qat-steps", type=int, help="quantization-aware training steps after quantizing (spikemfm.qat)")
    cv.add_argument("--max-spikes", type=_spikes_flag, help="spikes per neuron per step: an integer or 'graded'")
    cv.add_argument("--timesteps", "-T", type=int)
    cv.add_argument("--calib-samples", type=int)
    cv.add_argument("--eval-samples", type=int)
    cv.add_argument("--model-arg", dest="model_args", action="append", type=_model_arg, metavar="KEY=VALUE",
                    help="an option of the model's factory, e.g. img_size=96 or num_classes=10 (TOML value syntax; "
                    "repeatable)")
    cv.add_argument("--data", help="an image folder or a text file of sentences (one per line) to calibrate on "
                    "(even-numbered items) and evaluate on (odd-numbered); default Fashion-MNIST / real sentences")
    cv.add_argument("--out")
    cv.add_argument("--no-progress", action="store_true")
    cv.set_defaults(func=_cmd_convert)
    sm = sub.add_parser("simulate", help="simulate real test inputs on a saved (or named) model, step by step")
    sm.add_argument("model", help=_MODEL_HELP)
    _add_source(sm, spikes_default="16")
    sm.add_argument("--inputs", type=int, default=16)
    sm.add_argument("--timesteps", "-T", type=int, default=32)
    sm.add_argument("--out", default="results/simulate_cli")
    sm.add_argument("--config", help=_CONFIG_HELP.format("simulate"))
    sm.set_defaults(func=_cmd_simulate)
    rp = sub.add_parser("report", help="one markdown report of every saved results table and plot")
    rp.add_argument("--results", default="results")
    rp.add_argument("--out", default="results/REPORT.md")
    rp.add_argument("--config", help=_CONFIG_HELP.format("report"))
    rp.set_defaults(func=_cmd_report)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all sub-commands."""
    parser = argparse.ArgumentParser(prog="spikemfm", description="Convert multimodal transformers "
                                     "(CLIP, ViT, BERT) into exact spiking neural networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the main job on the bundled tiny-clip-fmnist (zero-shot accuracy) or any "
                          "supported model (FP32 vs QANN vs SNN on real data)")
    demo.add_argument("--model", default="tiny-clip-fmnist", help="tiny-clip-fmnist (default), minilm, timm:<name>, "
                      "open_clip:<arch>, hf:<name-or-folder>")
    _add_source(demo, spikes_default="16")
    demo.add_argument("--n-test", type=int, default=10000, help="tiny CLIP: test images for FP32 (max 10000)")
    demo.add_argument("--n-snn", type=int, help="inputs for the QANN and SNN rows (tiny CLIP: 1000 of the "
                      "--n-test images; other models: 64 real test inputs)")
    demo.add_argument("--timesteps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    demo.add_argument("--batch-size", type=int, default=500)
    demo.add_argument("--stream-frames", type=int, default=16, help="tiny CLIP: real video frames (vtest) of the "
                      "streaming row, state kept across frames (0: no streaming row)")
    demo.add_argument("--out", default="results/demo_cli")
    demo.add_argument("--config", help=_CONFIG_HELP.format("demo"))
    demo.set_defaults(func=_cmd_demo)
    en = sub.add_parser("energy", help="energy of a saved SNN (or the tiny CLIP's) vs dense baselines per "
                        "hardware profile")
    en.add_argument("model", nargs="?", help=_MODEL_HELP + "; without it the tiny CLIP's tower (--tower) is "
                    "converted with its prompts")
    en.add_argument("--profile", nargs="+", default=["horowitz45", "standard_formula", "loihi", "truenorth",
                                                     "eyeriss_int8"], help="profile names or TOML paths")
    _add_source(en, spikes_default="4")
    en.add_argument("--timesteps", "-T", type=int, default=8)
    en.add_argument("--images", "--inputs", dest="images", type=int, default=100,
                    help="real test inputs (images or sentences) simulated")
    en.add_argument("--adaptive", action="store_true", help="adaptive T: each input stops at its first step in "
                    "which no neuron moved (its output is then exactly the QANN's); -T is the cap")
    en.add_argument("--out", default="results/energy_cli")
    en.add_argument("--config", help=_CONFIG_HELP.format("energy"))
    en.set_defaults(func=_cmd_energy)
    _add_convert(sub)
    from spikemfm.cli_evaluate import add_evaluate
    from spikemfm.cli_stream import add_stream

    add_stream(sub, _MODEL_HELP, _add_source)
    add_evaluate(sub, _MODEL_HELP, _add_source)
    lv = sub.add_parser("lava", help="run a converted block / tower in Lava and check it against the PyTorch SNN")
    lv.add_argument("model", nargs="?", help=_MODEL_HELP + "; without it --agreement-model")
    lv.add_argument("--agreement-model", choices=["tiny-clip-image", "minilm"], default="tiny-clip-image",
                    help="a bundled model converted here with --bits/--max-spikes")
    lv.add_argument("--part", choices=["mlp", "attention", "block", "tower"], default="block")
    lv.add_argument("--block", type=int, default=0, help="block index (ignored for --part tower)")
    lv.add_argument("--timesteps", "-T", type=int, default=32)
    lv.add_argument("--inputs", type=int, default=2, help="real test images / sentences in the batch")
    _add_source(lv, spikes_default="16")
    lv.add_argument("--precision", nargs="+", choices=["floating_pt", "fixed_pt"], default=["floating_pt", "fixed_pt"])
    lv.add_argument("--frac-bits", type=int, default=16, help="fixed point: fractional bits of graded values")
    lv.add_argument("--seed", type=int, default=0)
    lv.add_argument("--timeout", type=float, default=900, help="seconds before the Lava worker is killed")
    lv.add_argument("--out", default="results/lava_cli")
    lv.add_argument("--config", help=_CONFIG_HELP.format("lava"))
    lv.set_defaults(func=_cmd_lava)
    return parser


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[command]


def _all_options(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """The option names (dests) of every sub-command, for shared config files."""
    from spikemfm.cli_config import options_of

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: set(options_of(sub)) for name, sub in action.choices.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    from spikemfm.cli_config import apply_config

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    # SIGTERM unwinds like Ctrl-C: workers are killed and temp files removed on the way out (finally blocks)
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        if args.command != "convert":  # convert reads its TOML into a ConvertJob (spikemfm.jobs)
            args = apply_config(_subparser(parser, args.command), args, argv, args.command,
                                {k: v for k, v in _all_options(parser).items() if k != args.command})
        return func(args)
    except (SpikeMFMError, ValueError) as exc:
        print(f"spikemfm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spikemfm {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"spikemfm {args.command}: terminated (SIGTERM); nothing was written", file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks (worker kill, staging clean-up) run."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated()


if __name__ == "__main__":
    sys.exit(main())

"""``spikemfm evaluate``: accuracy (or cosine) against T on real data, data-parallel under ``torchrun``."""
from __future__ import annotations

import argparse

from spikemfm.cli.common import MODEL_HELP, add_source, print_rows, source
from spikemfm.errors import ConfigError
from spikemfm.lm.build import SMOOTH


def run(args: argparse.Namespace, others: dict[str, set[str]]) -> int:
    """Evaluates a saved or named model; rank 0 prints a compact table (80 columns) and writes the files."""
    from spikemfm.app.evaluation import EvalConfig, run_evaluate
    from spikemfm.energy import load_profile
    from spikemfm.core.io import check_out_dir

    model = args.model_flag or args.model
    if args.model_flag and args.model and args.model_flag != args.model:
        raise ConfigError(f"model given twice ({args.model!r} and --model {args.model_flag!r}); give one")
    if not model:
        raise ConfigError("no model: give a model.snn.pt or a model name (--model tiny-clip-fmnist)")
    if args.data_set == "humaneval" or args.data_set.startswith("code:"):
        return run_lm(model, args)
    check_out_dir(args.out)
    for p in args.profile:
        load_profile(p)  # fail fast on a bad profile
    cfg = EvalConfig(data=args.data_set, inputs=args.inputs, timesteps=tuple(args.timesteps),
                     batch_size=args.batch_size, profiles=tuple(args.profile), device=args.device,
                     max_memory_mib=args.max_memory_mib)
    rows = run_evaluate(model, cfg, args.out, source(args), progress=not args.no_progress)
    if rows is None:  # not rank 0: rank 0 prints and writes
        return 0
    p = args.profile[0]
    scored = rows[0]["accuracy"] is not None
    fmt = (lambda v: "n/a" if v is None else v if isinstance(v, str) else f"{v:.4g}")  # noqa: E731
    print_rows(f"spikemfm evaluate: {model}, {rows[0]['inputs']} inputs ({args.data_set})",
                [{"T": r["T"], "acc" if scored else "cos(qann)": fmt(r["accuracy"] if scored else r["cosine_vs_qann"]),
                  "exact": fmt(r["exact_share"]), "spikes/in": fmt(r["spikes_per_input"]),
                  f"{p} nJ": fmt(r[f"{p}:snn_nJ"]), "int8 nJ": fmt(r[f"{p}:dense_int8_nJ"])} for r in rows])
    if scored:
        print(f"  QANN accuracy {rows[0]['qann_accuracy']:.4f}, float {rows[0]['float_accuracy']:.4f}")
    print(f"wrote {args.out}/evaluate.{{json,csv,md}} and layers.{{json,csv,md}}")
    return 0


def run_lm(model: str, args: argparse.Namespace) -> int:
    """A causal LM: HumanEval pass@1 or perplexity on code, per path."""
    from spikemfm.app.lm_eval import LMEvalConfig, run_lm_evaluate

    cfg = LMEvalConfig(data=args.data_set, problems=args.problems, paths=tuple(args.paths), bits=args.bits,
                       smooth=None if args.smooth < 0 else args.smooth, max_new_tokens=args.max_new_tokens,
                       window=args.window, windows=args.windows, timeout_s=args.timeout_s,
                       memory_mib=args.memory_mib)
    rows = run_lm_evaluate(model, cfg, args.out, progress=not args.no_progress)
    fmt = (lambda v: "n/a" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    keys = ("path", "perplexity", "vs_fp32", "equals_qann") if cfg.data.startswith("code:") else \
        ("path", "problems", "pass_at_1", "timeouts", "mean_new_tokens", "tokens_equal_qann")
    print_rows(f"spikemfm evaluate: {model} on {cfg.data}", [{k: fmt(r[k]) for k in keys} for r in rows])
    print(f"wrote {args.out}/evaluate.{{json,csv,md}}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Adds ``spikemfm evaluate`` and its options."""
    ev = sub.add_parser("evaluate", help="accuracy (or cosine) against T of a spiking tower on real data, with "
                        "spike statistics and energy; data-parallel under torchrun, resumable")
    ev.add_argument("model", nargs="?", help=MODEL_HELP)
    ev.add_argument("--model", dest="model_flag", metavar="MODEL", help="the same as the positional MODEL")
    ev.add_argument("--data-set", default="default",
                    help="default (the model's own data: Fashion-MNIST test / held-out sentences), fashion-mnist, "
                    "mnist, sentences, video:<vtest|megamind|tree|file>, or an image folder / text file; for a causal LM "
                    "humaneval (pass@1) or code:PATH (perplexity on a source file or folder)")
    ev.add_argument("--images", "--inputs", dest="inputs", type=int, default=200, help="inputs evaluated")
    ev.add_argument("--timesteps", "-T", type=int, nargs="+", default=[8, 16, 32], help="one or more T")
    ev.add_argument("--batch-size", type=int, default=50, help="inputs per batch (the unit of work and of resume)")
    ev.add_argument("--profile", nargs="+", default=["loihi2", "horowitz45"], help="energy profiles")
    ev.add_argument("--device", help="cpu, cuda or cuda:N (default: cpu; under torchrun cuda means one GPU per rank)")
    ev.add_argument("--max-memory-mib", type=float, help="simulate each batch in chunks under this estimated memory")
    add_source(ev, spikes_default="16")
    lm = ev.add_argument_group("causal LMs (--data-set humaneval or code:PATH)")
    lm.add_argument("--problems", type=int, help="HumanEval: the first K problems (default all 164)")
    lm.add_argument("--paths", nargs="+", default=["fp32", "qann", "snn"], help="which of fp32 qann snn")
    lm.add_argument("--smooth", type=float, default=SMOOTH, help="SmoothQuant alpha of the QANN (negative: off)")
    lm.add_argument("--max-new-tokens", type=int, default=256, help="the longest completion")
    lm.add_argument("--window", type=int, default=256, help="code:PATH: tokens per perplexity window")
    lm.add_argument("--windows", type=int, default=8, help="code:PATH: windows scored")
    lm.add_argument("--timeout-s", type=float, default=10.0, help="sandbox: seconds per completion's tests")
    lm.add_argument("--memory-mib", type=int, default=1024, help="sandbox: address-space limit per completion")
    ev.add_argument("--out", default="results/evaluate_cli")
    ev.add_argument("--config", help="TOML file of this command's options (keys = flag names, at the top level or "
                    "in an [evaluate] table); flags given on the command line override it")
    ev.set_defaults(func=run)

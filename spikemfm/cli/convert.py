"""``spikemfm convert``: load, (prune,) quantize, convert and save a model with its summary."""
from __future__ import annotations

import argparse
import sys

from spikemfm.cli.common import model_arg, print_rows, spikes_flag


def run(args: argparse.Namespace, others: dict[str, set[str]]) -> int:
    """Loads a model, (prunes,) quantizes and converts it; writes the SNN file and a JSON summary (``run_convert``
    checks ``--out`` before any work)."""
    from spikemfm.app.jobs import job_from_toml, run_convert, weights_of

    overrides = {k: getattr(args, k) for k in ("model", "tower", "checkpoint", "bits", "budget", "energy_budget",
                                                "energy_profile", "head_ratio",
                                                "mlp_ratio", "recovery_steps", "qat_steps", "max_spikes", "timesteps",
                                                "calib_samples", "eval_samples", "data", "model_args", "out")}
    job = job_from_toml(args.config, overrides, elsewhere=set().union(*others.values()), commands=tuple(others))
    if weights_of(job).startswith("random-init"):
        print(f"spikemfm convert: warning: {job.model} has {weights_of(job)}", file=sys.stderr)
    summary = run_convert(job, progress=not args.no_progress)
    keys = ("graph", "params", "weight_bytes", "neurons_per_input", "spikes_per_input", "t_exact",
            "max_rel_error_at_T", "qann_vs_module_cosine", "graph_vs_module_rel_l2", "snn_equals_qann",
            "qann_vs_fp32_rel_l2", "qann_vs_fp32_top1_agreement")
    # one field per line: ten columns do not fit 80 characters
    print_rows(f"spikemfm convert: {job.model} ({summary['graph']}) -> {summary['file']}",
                [{"field": k, "value": summary[k]} for k in keys if k in summary])
    print(f"wrote {summary['file']} and {job.out}/summary.json")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Adds ``spikemfm convert`` and its options."""
    cv = sub.add_parser("convert", help="quantize (uniform bits or a mixed-precision budget), optionally prune, "
                        "convert to an SNN and save it")
    cv.add_argument("--config", help="TOML file with ConvertJob fields; flags override it")
    cv.add_argument("--model", help="tiny-clip-fmnist, minilm, timm:<name>, open_clip:<arch>, hf:<name-or-folder>, "
                    "smollm2-135m, hf-lm:<name-or-folder> (causal LMs: calibrated on standard-library code)")
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
    cv.add_argument("--max-spikes", type=spikes_flag, help="spikes per neuron per step: an integer or 'graded'")
    cv.add_argument("--timesteps", "-T", type=int)
    cv.add_argument("--calib-samples", type=int)
    cv.add_argument("--eval-samples", type=int)
    cv.add_argument("--model-arg", dest="model_args", action="append", type=model_arg, metavar="KEY=VALUE",
                    help="an option of the model's factory, e.g. img_size=96 or num_classes=10 (TOML value syntax; "
                    "repeatable)")
    cv.add_argument("--data", help="an image folder or a text file of sentences (one per line) to calibrate on "
                    "(even-numbered items) and evaluate on (odd-numbered); default Fashion-MNIST / real sentences")
    cv.add_argument("--out")
    cv.add_argument("--no-progress", action="store_true")
    cv.set_defaults(func=run)

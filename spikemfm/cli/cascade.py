"""``spikemfm cascade``: a small spiking model answers HumanEval first; its self-test decides when the large one
answers (threshold chosen on validation problems, reported on the rest)."""
from __future__ import annotations

import argparse

from spikemfm.cli.common import print_rows


def run(args: argparse.Namespace, others: dict[str, set[str]]) -> int:
    """Parses the options into a :class:`CascadeConfig` and runs it."""
    from spikemfm.app.cascade_job import CascadeConfig, run_cascade

    cfg = CascadeConfig(args.model, args.small_bits, args.large_bits, args.problems, args.val_every,
                        args.max_new_tokens, args.profile, args.energy_tokens, args.answer_path)
    rows = run_cascade(cfg, args.out, progress=None if args.no_progress else print)
    print_rows(f"cascade on the test problems ({args.profile}, energy per problem in nJ)",
               [{"policy": r["policy"], "passed": f"{r['passed']}/{r['problems']}",
                 "escalated": r["escalated_share"], "nJ": r["energy_per_problem"], "vs large": r["energy_vs_large"]}
                for r in rows if r["split"] == "test"])
    print(f"wrote {args.out}/cascade.{{json,csv,md}} and answers.{{json,csv,md}}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Adds ``spikemfm cascade`` and its options."""
    p = sub.add_parser("cascade", help="small-to-large spiking cascade on HumanEval with doctest self-tests")
    p.add_argument("--model", default="smollm2-135m", help="smollm2-135m or hf-lm:<name or folder>")
    p.add_argument("--small-bits", type=int, default=4)
    p.add_argument("--large-bits", type=int, default=8)
    p.add_argument("--problems", type=int, default=20, help="the first K HumanEval problems")
    p.add_argument("--val-every", type=int, default=2, help="every N-th problem chooses the threshold")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--profile", default="loihi2", help="energy per token: a chip's system estimate, else operations")
    p.add_argument("--energy-tokens", type=int, default=4)
    p.add_argument("--answer-path", choices=("qann", "snn"), default="qann",
                   help="which path answers (the SNN's tokens equal the QANN's; energy is always the SNN's)")
    p.add_argument("--out", default="results/cascade_run")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)

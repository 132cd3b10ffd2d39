"""``spikemfm report``: one markdown report of every saved results table and plot."""
from __future__ import annotations

import argparse

from spikemfm.cli.common import CONFIG_HELP


def run(args: argparse.Namespace, others: dict[str, set[str]]) -> int:
    """Collects every saved results table and plot into one markdown report."""
    from spikemfm.app.report import build_report

    print(f"wrote {build_report(args.results, args.out)}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Adds ``spikemfm report`` and its options."""
    rp = sub.add_parser("report", help="one markdown report of every saved results table and plot")
    rp.add_argument("--results", default="results")
    rp.add_argument("--out", default="results/REPORT.md")
    rp.add_argument("--config", help=CONFIG_HELP.format("report"))
    rp.set_defaults(func=run)

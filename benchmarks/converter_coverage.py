"""Coverage of the converter: every timm ViT-family model name, every open_clip architecture (both towers) and
the Hugging Face encoder classes, each as a small random-init config (no weights needed), converted or refused.

Per case (``spikemfm.app.coverage``): converts (fidelity of the extracted graph to the module, 8-bit QANN error
vs the module, SNN ≡ QANN with graded spikes, T_exact at 4 bits with binary spikes, T ≤ 64) / refused (the
reason, from ``UnsupportedModuleError`` or the fidelity guard) / not built (the family's own factory cannot build
the small config offline) / crash (any other exception: must be 0). Writes results/coverage/coverage.{json,csv,md}
(every case), coverage_summary.{json,csv,md} (counts per family and status) and coverage_refusals.{json,csv,md}
(what is not supported: refusal reasons grouped, with counts and examples).

Run: ``python benchmarks/converter_coverage.py`` (about 12 minutes on 2 cores; ``--family hf`` for one family;
``--from-saved`` redoes the summaries from the saved coverage.json). Not named coverage.py: run as a script, that
name would shadow the ``coverage`` package numba imports.
"""
from __future__ import annotations

import argparse
import collections
import json
import re
from pathlib import Path

from tqdm.auto import tqdm

from spikemfm.app import coverage as C
from spikemfm.core.io import save_table
from spikemfm.core.provenance import add_results_args, results_run

FAMILIES = {"timm": C.timm_cases, "open_clip": C.open_clip_cases, "hf": C.hf_cases}
STATUSES = ("converts", "refused", "not built", "crash")


def _refusals(rows: list[dict]) -> list[dict]:
    """Refusal reasons grouped (block indices and numbers folded), most frequent first."""
    groups: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    for r in rows:
        if r["status"] in ("refused", "not built"):
            key = re.sub(r"\d+", "N", r["reason"])[:160]
            groups[(r["family"], f"{r['status']}: {key}")].append(r["name"])
    out = [{"family": f, "reason": reason, "cases": len(names), "examples": ", ".join(names[:3])}
           for (f, reason), names in groups.items()]
    return sorted(out, key=lambda r: (r["family"], -r["cases"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    p.add_argument("--out", default="results/coverage")
    p.add_argument("--from-saved", action="store_true", help="summarise the saved coverage.json again")
    add_results_args(p)
    args = p.parse_args()
    results_run(args.allow_dirty)
    out = Path(args.out)
    cfg = {"families": args.family, "small_timm": C.SMALL_TIMM, "small_hf": C.SMALL_HF,
           "t_exact_steps": C.T_EXACT_STEPS}
    if args.from_saved:
        saved = json.loads((out / "coverage.json").read_text())
        rows, cfg = saved["rows"], saved["config"]
        args.family = cfg["families"]
    else:
        rows = [C.run_case(case).as_dict() for f in args.family
                for case in tqdm(FAMILIES[f](), desc=f"coverage {f}", unit="model")]
        save_table(out, "coverage", rows, cfg, "Converter coverage: every case (small random-init configs)")
    counts = collections.Counter((r["family"], r["status"]) for r in rows)
    summary = [{"family": f, **{s: counts[(f, s)] for s in STATUSES}, "total": sum(counts[(f, s)] for s in STATUSES)}
               for f in args.family]
    md = save_table(out, "coverage_summary", summary, cfg, "Converter coverage: cases per family and status")
    save_table(out, "coverage_refusals", _refusals(rows), cfg, "Converter coverage: what is refused, and why")
    print(md)
    crashes = [r for r in rows if r["status"] == "crash"]
    for r in crashes:
        print(f"CRASH {r['family']} {r['name']}: {r['reason']}")
    print(f"wrote {out}/coverage.{{json,csv,md}}, coverage_summary.* and coverage_refusals.*; {len(crashes)} crash(es)")


if __name__ == "__main__":
    main()

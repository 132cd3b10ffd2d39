"""Coverage of the converter: every timm ViT-family model name, every open_clip architecture (both towers) and
the Hugging Face encoder classes, each as a small random-init config (no weights needed), converted or refused.

Per case (``spikemfm.app.coverage``): converts (fidelity of the extracted graph to the module, 8-bit QANN error
vs the module, SNN ≡ QANN with graded spikes, T_exact at 4 bits with binary spikes, T ≤ 64) / refused (the
reason, from ``UnsupportedModuleError`` or the fidelity guard) / not built (the family's own factory cannot build
the small config offline) / crash (any other exception: must be 0). Writes results/coverage/coverage.{json,csv,md}
(every case) and coverage_summary.{json,csv,md} (counts per family and status).

Run: ``python benchmarks/converter_coverage.py`` (about 20 minutes on 2 cores; ``--family hf`` for one family).
"""
from __future__ import annotations

import argparse
import collections
from pathlib import Path

from tqdm.auto import tqdm

from spikemfm.app import coverage as C
from spikemfm.io import save_table

FAMILIES = {"timm": C.timm_cases, "open_clip": C.open_clip_cases, "hf": C.hf_cases}
STATUSES = ("converts", "refused", "not built", "crash")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    p.add_argument("--out", default="results/coverage")
    args = p.parse_args()
    cases = [c for f in args.family for c in FAMILIES[f]()]
    rows = []
    for case in tqdm(cases, desc="coverage", unit="model"):
        rows.append(C.run_case(case).as_dict())
    counts = collections.Counter((r["family"], r["status"]) for r in rows)
    summary = [{"family": f, **{s: counts[(f, s)] for s in STATUSES}, "total": sum(counts[(f, s)] for s in STATUSES)}
               for f in args.family]
    cfg = {"families": args.family, "small_timm": C.SMALL_TIMM, "small_hf": C.SMALL_HF,
           "t_exact_steps": C.T_EXACT_STEPS}
    out = Path(args.out)
    save_table(out, "coverage", rows, cfg, "Converter coverage: every case (small random-init configs)")
    md = save_table(out, "coverage_summary", summary, cfg, "Converter coverage: cases per family and status")
    print(md)
    crashes = [r for r in rows if r["status"] == "crash"]
    for r in crashes:
        print(f"CRASH {r['family']} {r['name']}: {r['reason']}")
    print(f"wrote {out}/coverage.{{json,csv,md}} and coverage_summary.*; {len(crashes)} crash(es)")


if __name__ == "__main__":
    main()

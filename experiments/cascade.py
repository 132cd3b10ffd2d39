"""A small-to-large spiking cascade on HumanEval with self-tests: SmolLM2-135M at ``--small-bits`` (4) answers
first, at 8 bits when the self-test (the prompt's own doctest examples in the sandbox, and the top-1 margin) escalates.

Both models answer every one of the first ``--problems`` problems (greedy, raw prompt; the QANN answers — its
tokens and logits equal its SNN's, every pass settling); every ``--val-every``-th problem is a validation problem
on which τ is chosen (the cheapest τ reaching the best validation pass count); the others report always-small,
always-large and the cascade at that τ. Energy per problem = generated tokens × the SNN's energy per decoded
token on ``--profile`` (Loihi 2: its system estimate, static power included). Writes
results/cascade/{cascade,answers}.{json,csv,md} and cascade.png.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from spikemfm.app.cascade_job import CascadeConfig, run_cascade
from spikemfm.core.io import save_figure
from spikemfm.core.provenance import add_results_args, results_run


def plot(rows: list[dict], path: Path) -> None:
    """pass@1 against energy per problem (relative to always-large), validation thresholds and test policies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for split, style in (("validation", "o-"), ("test", "s")):
        sel = [r for r in rows if r["split"] == split]
        ax.plot([r["energy_vs_large"] for r in sel], [r["passed"] / r["problems"] for r in sel], style, label=split)
        for r in sel:
            ax.annotate(r["policy"], (r["energy_vs_large"], r["passed"] / r["problems"]), fontsize=6)
    ax.set_xlabel("energy per problem / always-large")
    ax.set_ylabel("pass@1")
    ax.set_title("4-bit -> 8-bit spiking SmolLM2 cascade, HumanEval", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--small-bits", type=int, default=4, help="the small model's bits (the large one: 8)")
    ap.add_argument("--problems", type=int, default=40)
    ap.add_argument("--val-every", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--profile", default="loihi2")
    ap.add_argument("--out", default="results/cascade")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    cfg = CascadeConfig(args.model, args.small_bits, 8, args.problems, args.val_every, args.max_new_tokens, args.profile)
    rows = run_cascade(cfg, args.out, plot=plot)
    for r in rows:
        print(f"{r['split']:10} {r['policy']:10} {r['passed']}/{r['problems']} escalated {r['escalated_share']} "
              f"energy x{r['energy_vs_large']}")


if __name__ == "__main__":
    main()

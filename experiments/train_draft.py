"""Distil a small draft LM from SmolLM2-135M on the standard library's calibration files (draft (c) of the
speculative study): the teacher's first ``--layers`` blocks, its norm and its frozen tied head, trained on the
teacher's greedy tokens (:mod:`spikemfm.lm.draft`); ``--generated N`` adds N windows whose last ``--new-tokens``
the teacher writes itself (sequence-level distillation), ``--init`` trains further from an earlier draft.
Held-out agreement on validation windows; the test files
are never read. Writes the draft (with the tokenizer, loadable as ``hf-lm:<folder>``) to ``--model-out`` and the
loss / agreement history to results/draft/{json,csv,md,png}.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from spikemfm.core.io import output_set, save_figure, save_table
from spikemfm.core.provenance import add_results_args, results_run
from spikemfm.lm.draft import DraftConfig, distill_draft


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--windows", type=int, default=1024)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--generated", type=int, default=0, help="windows whose last --new-tokens the teacher writes")
    ap.add_argument("--new-tokens", type=int, default=192)
    ap.add_argument("--init", help="train further from this draft (hf-lm:<folder>)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--model-out", default="runs/draft-smollm2")
    ap.add_argument("--out", default="results/draft")
    add_results_args(ap)
    args = ap.parse_args()
    results_run(args.allow_dirty)
    cfg = DraftConfig(layers=args.layers, windows=args.windows, generated=args.generated,
                      new_tokens=args.new_tokens, length=args.length, epochs=args.epochs, lr=args.lr)
    _, history = distill_draft(args.model, cfg, args.model_out, log=lambda m: print(m, flush=True), init=args.init)
    rows = [{**h, "layers": cfg.layers} for h in history]
    with output_set(Path(args.out)) as stage:
        save_table(stage, "draft", rows, vars(args), f"{args.model}: draft of {cfg.layers} block(s) distilled on "
                   "the calibration split; agreement with the teacher's greedy token on validation windows")
        plot(rows, stage / "draft.png")
    print(f"wrote {args.model_out} and {args.out}/draft.{{json,csv,md,png}}")


def plot(rows: list[dict], path: Path) -> None:
    """Training loss per step and held-out agreement per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    loss = [r for r in rows if "loss" in r]
    a.plot([r["step"] for r in loss], [r["loss"] for r in loss], lw=0.8)
    a.set_xlabel("step")
    a.set_ylabel("cross-entropy vs the teacher's greedy token")
    agree = [r for r in rows if "val_agreement" in r]
    b.plot([r["epoch"] for r in agree], [r["val_agreement"] for r in agree], "o-")
    b.set_xlabel("epoch")
    b.set_ylabel("held-out top-1 agreement")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    main()

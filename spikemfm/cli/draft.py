"""``spikemfm draft``: a small draft LM distilled from a causal LM on source code (for ``spikemfm generate
--draft-model``)."""
from __future__ import annotations

import argparse


def run(args: argparse.Namespace, others: dict[str, set[str]]) -> int:
    """Parses the options into a :class:`DraftConfig`, distils, saves the draft and prints its agreement."""
    from spikemfm.lm.draft import DraftConfig, distill_draft

    cfg = DraftConfig(layers=args.layers, windows=args.windows, generated=args.generated,
                      new_tokens=args.new_tokens, length=args.length, epochs=args.epochs, lr=args.lr)
    folder, history = distill_draft(args.model, cfg, args.out, (lambda m: None) if args.no_progress else print,
                                    args.init)
    agree = [h["val_agreement"] for h in history if "val_agreement" in h]
    print(f"draft of {cfg.layers} block(s) saved to {folder} (use --draft-model hf-lm:{folder}); agreement with "
          f"the teacher's greedy token on validation code {agree[0]:.3f} -> {agree[-1]:.3f}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Adds ``spikemfm draft`` and its options."""
    p = sub.add_parser("draft", help="distil a small draft LM (the model's first blocks and head, trained on its "
                       "greedy tokens over standard-library code) for speculative decoding")
    p.add_argument("model", help="smollm2-135m or hf-lm:<name or folder> (LLaMA / Qwen2 / Mistral style)")
    p.add_argument("--out", required=True, help="folder for the draft and its tokenizer")
    p.add_argument("--layers", type=int, default=2, help="blocks of the draft")
    p.add_argument("--windows", type=int, default=1024, help="training windows (calibration split)")
    p.add_argument("--length", type=int, default=256, help="tokens per window")
    p.add_argument("--generated", type=int, default=0, help="windows continued greedily by the model for their last "
                   "--new-tokens tokens (sequence-level distillation on its own path)")
    p.add_argument("--new-tokens", type=int, default=192)
    p.add_argument("--init", help="train further from this draft (hf-lm:<folder>) instead of the model's first blocks")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)

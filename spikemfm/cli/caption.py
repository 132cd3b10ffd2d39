"""``spikemfm caption``: describe images with the tiny-CLIP tower → projector → causal LM (fp32, QANN or SNN)."""
from __future__ import annotations

import argparse


def run(args: argparse.Namespace, others: dict[str, set[str]]) -> int:
    """Parses the options into a :class:`CaptionConfig`, prints one description per image."""
    from spikemfm.app.caption_job import CaptionConfig, run_caption

    cfg = CaptionConfig(args.model, args.path, args.k, args.steps, args.train_images, args.bits, args.max_new_tokens,
                        args.resolution)
    rows = run_caption(args.images, cfg, args.projector, args.train_folder, args.save_projector,
                       progress=None if args.no_progress else print)
    for r in rows:
        print(f"{r['image']}: {r['description']}" + ("" if r["exact"] else "  (a pass did not settle)"))
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Adds ``spikemfm caption`` and its options."""
    p = sub.add_parser("caption", help="describe images: tiny-CLIP tower -> projector -> causal LM (SNN by default)")
    p.add_argument("images", nargs="+", help="image files (any size; grey or colour)")
    p.add_argument("--model", default="smollm2-135m", help="smollm2-135m or hf-lm:<name or folder>")
    p.add_argument("--path", choices=("fp32", "qann", "snn"), default="snn")
    p.add_argument("--projector", help="a projector saved with --save-projector (else one is trained first)")
    p.add_argument("--train-folder", help="train the projector on this folder's captions.tsv (file<TAB>caption); "
                   "default: Fashion-MNIST training images captioned with their class names")
    p.add_argument("--save-projector", help="write the trained projector here")
    p.add_argument("--k", type=int, default=4, help="visual tokens")
    p.add_argument("--steps", type=int, default=120, help="projector training steps")
    p.add_argument("--train-images", type=int, default=4000, help="Fashion-MNIST training images (default data)")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--resolution", type=int, default=28, help="the tower's input size (multiple of 4; fewer "
                   "patches below 28)")
    p.add_argument("--max-new-tokens", type=int, default=6)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)

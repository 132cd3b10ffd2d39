"""``spikemfm generate``: greedy text from a causal LM (float, QANN or SNN), streamed as it is produced."""
from __future__ import annotations

import argparse
import sys

from spikemfm.errors import ConfigError


def run(args: argparse.Namespace, others: dict[str, set[str]]) -> int:
    """Builds the model on the asked path and streams the generated text."""
    import torch

    from spikemfm.lm import generate
    from spikemfm.lm.build import build_lm

    if not args.prompt:
        raise ConfigError("--prompt is empty: give the text to continue")
    if args.max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens={args.max_new_tokens}: must be >= 1")
    model, tok = build_lm(args.model, args.path, args.bits, None if args.smooth < 0 else args.smooth,
                          progress=True)
    ids = torch.tensor([tok(args.prompt).input_ids], dtype=torch.long)
    shown: list[int] = []

    def stream(t: torch.Tensor) -> None:  # decode the whole tail: a token may complete a multi-byte character
        before = tok.decode(shown)
        shown.append(int(t[0]))
        sys.stdout.write(tok.decode(shown)[len(before):])
        sys.stdout.flush()
    sys.stdout.write(args.prompt)
    g = generate(model, ids, args.max_new_tokens, eos_token_id=tok.eos_token_id, on_token=stream)
    print()
    steps = sum(g.steps[1:]) / max(1, len(g.steps) - 1)
    print(f"[{g.path}] {g.new_tokens.shape[1]} tokens, {g.target_passes} passes, {steps:.1f} steps per decoded "
          f"token, exact={g.exact}, KV cache {g.kv_cache_bytes} bytes", file=sys.stderr)
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Adds ``spikemfm generate`` and its options."""
    p = sub.add_parser("generate", help="generate text with a causal LM (fp32, QANN or SNN), streamed")
    p.add_argument("model", help="smollm2-135m or hf-lm:<name or folder>")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--path", choices=("fp32", "qann", "snn"), default="snn")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--smooth", type=float, default=0.5, help="SmoothQuant alpha (negative: off)")
    p.set_defaults(func=run)

"""``spikemfm generate``: greedy text from a causal LM (float, QANN or SNN), streamed as it is produced."""
from __future__ import annotations

import argparse
import sys

from spikemfm.errors import ConfigError
from spikemfm.lm.build import SMOOTH


def run(args: argparse.Namespace, others: dict[str, set[str]]) -> int:
    """Builds the model on the asked path and streams the generated text."""
    import torch

    from spikemfm.lm import generate

    if not args.prompt:
        raise ConfigError("--prompt is empty: give the text to continue")
    if args.max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens={args.max_new_tokens}: must be >= 1")
    model, tok = open_lm(args)
    draft = open_draft(args, model)
    ids = torch.tensor([tok(args.prompt).input_ids], dtype=torch.long)
    shown: list[int] = []

    def stream(t: torch.Tensor) -> None:  # decode the whole tail: a token may complete a multi-byte character
        before = tok.decode(shown)
        shown.append(int(t[0]))
        sys.stdout.write(tok.decode(shown)[len(before):])
        sys.stdout.flush()
    sys.stdout.write(args.prompt)
    g = generate(model, ids, args.max_new_tokens, eos_token_id=tok.eos_token_id, on_token=stream,
                 assistant=draft, num_assistant_tokens=args.num_assistant_tokens)
    print()
    steps = sum(g.steps[1:]) / max(1, len(g.steps) - 1)
    spec = "" if g.acceptance is None else f", draft acceptance {g.acceptance:.2f}"
    print(f"[{g.path}] {g.new_tokens.shape[1]} tokens, {g.target_passes} passes, {steps:.1f} steps per target "
          f"pass, exact={g.exact}, KV cache {g.kv_cache_bytes} bytes{spec}", file=sys.stderr)
    return 0


def open_draft(args: argparse.Namespace, model):
    """The speculative draft asked for (``--draft-layers`` / ``--draft-bits`` / ``--draft-model``), or None."""
    from spikemfm.app.jobs import is_model_file
    from spikemfm.lm.build import build_lm
    from spikemfm.lm.speculative import first_layers

    given = [o for o, v in (("--draft-layers", args.draft_layers), ("--draft-bits", args.draft_bits),
                             ("--draft-model", args.draft_model)) if v is not None]
    if len(given) > 1:
        raise ConfigError(f"{' and '.join(given)}: give one draft")
    if args.draft_model is not None:  # its own quantization at the target's bits, on the target's path
        return build_lm(args.draft_model, args.path if args.path != "fp32" else "qann", args.bits,
                        None if args.smooth < 0 else args.smooth, progress=True)[0]
    if args.draft_layers is not None:
        if args.path == "fp32":
            raise ConfigError("--draft-layers: a self-speculative draft is cut from the QANN or SNN (--path qann|snn)")
        return first_layers(model, args.draft_layers)
    if args.draft_bits is not None:
        if is_model_file(args.model):
            raise ConfigError(f"--draft-bits: {args.model} is a saved SNN; give the model's name to quantize a draft")
        return build_lm(args.model, args.path if args.path != "fp32" else "qann", args.draft_bits,
                        None if args.smooth < 0 else args.smooth, progress=True)[0]
    return None


def open_lm(args: argparse.Namespace):
    """(model, tokenizer): a ``model.snn.pt`` written by ``spikemfm convert`` (its SNN), or a name built on
    ``--path``."""
    from spikemfm.app.jobs import is_model_file
    from spikemfm.app.lm_eval import saved_lm
    from spikemfm.lm.build import build_lm

    if is_model_file(args.model):
        if args.path != "snn":
            raise ConfigError(f"{args.model} is a converted SNN: --path {args.path} needs a model name instead")
        return saved_lm(args.model)
    return build_lm(args.model, args.path, args.bits, None if args.smooth < 0 else args.smooth, progress=True)


def add(sub: argparse._SubParsersAction) -> None:
    """Adds ``spikemfm generate`` and its options."""
    p = sub.add_parser("generate", help="generate text with a causal LM (fp32, QANN or SNN), streamed")
    p.add_argument("model", help="smollm2-135m, hf-lm:<name or folder>, or a model.snn.pt of one (spikemfm "
                   "convert --model smollm2-135m)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--path", choices=("fp32", "qann", "snn"), default="snn")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--smooth", type=float, default=SMOOTH, help="SmoothQuant alpha (negative: off)")
    p.add_argument("--draft-layers", type=int, help="speculative decoding with the model's first K blocks as draft")
    p.add_argument("--draft-bits", type=int, help="speculative decoding with the same model at these bits as draft")
    p.add_argument("--draft-model", help="speculative decoding with a small LM sharing the tokenizer as draft "
                   "(hf-lm:<folder>, e.g. one written by spikemfm draft)")
    p.add_argument("--num-assistant-tokens", type=int, default=4, help="tokens the draft proposes per round")
    p.set_defaults(func=run)

"""Language-model applications of converted decoders: greedy generation with a KV cache (float, QANN or SNN),
code evaluation (HumanEval pass@1 with completions run in a sandboxed process) and perplexity on source code."""
from spikemfm.lm.generate import Generation, generate

__all__ = ["Generation", "generate"]

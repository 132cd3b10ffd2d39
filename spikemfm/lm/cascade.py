"""A small-to-large cascade for code with lightweight self-tests (after "Model Cascading for Code", 2024).

The small model answers every problem first. Its answer stands unless the self-test sends the problem to the
large model:

- **the prompt's own examples**: the doctest examples in the HumanEval prompt's docstring (never the hidden
  tests), parsed and run by the standard library's ``doctest`` in :mod:`spikemfm.lm.sandbox` — a separate,
  limited process — on prompt + completion;
- **confidence**: the mean top-1 margin (p₁ − p₂ of the softmax) over the small model's generated tokens, from
  its exact logits (an SNN's equal its QANN's once each pass settles).

Escalate when the examples fail, or when the margin is below τ. Both models answer every problem once
(:func:`attempt_both`), so any τ is evaluated without running a model again (:func:`outcome`); τ is chosen on
validation problems (:func:`choose_tau`: the cheapest τ reaching the best validation pass count) and reported on
the rest. Energy per problem = tokens × energy per token of each model that answered.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from spikemfm.errors import ConfigError
from spikemfm.lm.humaneval import complete, program
from spikemfm.lm.sandbox import SandboxConfig, run_program

TAUS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.01)  # 0: examples only; 1.01: always escalate


def examples_program(problem: dict[str, Any], completion: str) -> str | None:
    """The self-test program: prompt + completion, then the docstring's examples run by ``doctest`` (exit 0 when
    all pass); None when the prompt has no doctest examples."""
    import doctest

    doc = entry_docstring(problem)
    try:
        if not doctest.DocTestParser().get_examples(doc):
            return None
    except ValueError:  # examples doctest cannot parse (inconsistent indentation): no self-test
        return None
    return (f"{problem['prompt']}{completion}\n\n"
            "import doctest as _d, sys as _s\n"
            f"_t = _d.DocTestParser().get_doctest({doc!r}, globals(), 'self_test', None, 0)\n"
            "_r = _d.DocTestRunner(verbose=False, optionflags=_d.NORMALIZE_WHITESPACE)\n"
            "_r.run(_t, out=lambda s: None)\n"
            "_s.exit(1 if _r.failures or not _r.tries else 0)\n")


def entry_docstring(problem: dict[str, Any]) -> str:
    """The docstring of the prompt's entry-point function, read by parsing (never executing) the prompt."""
    import ast

    try:
        tree = ast.parse(problem["prompt"] + "    pass\n")
    except SyntaxError:
        return ""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == problem.get("entry_point"):
            return ast.get_docstring(node, clean=False) or ""
    return ""


@dataclass(frozen=True)
class Answer:
    """One model's answer to one problem: completion, tokens, mean top-1 margin, self-test ("passed", "failed",
    "none": no examples) and the hidden tests' verdict."""

    task_id: str
    completion: str
    tokens: int
    margin: float
    self_test: str
    passed: bool


def answer(model: Any, tokenizer: Any, problem: dict[str, Any], max_new_tokens: int, sandbox: SandboxConfig
           ) -> Answer:
    """Greedy completion with its margins, the self-test and the hidden tests (each in the sandbox)."""
    completion, gen = complete(model, tokenizer, problem["prompt"], max_new_tokens)
    test = examples_program(problem, completion)
    status = "none" if test is None else run_program(test, sandbox).status
    margin = sum(gen.margins) / len(gen.margins) if gen.margins else 0.0
    hidden = run_program(program(problem, completion), sandbox).passed
    return Answer(problem["task_id"], completion, int(gen.new_tokens.shape[1]), margin,
                  "passed" if status == "passed" else ("none" if status == "none" else "failed"), hidden)


def attempt_both(small: Any, large: Any, tokenizer: Any, problems: Sequence[dict[str, Any]], max_new_tokens: int,
                 sandbox: SandboxConfig = SandboxConfig(), progress: Callable[[str], None] | None = None
                 ) -> list[tuple[Answer, Answer]]:
    """(small's answer, large's answer) for every problem."""
    out = []
    for i, p in enumerate(problems):
        pair = (answer(small, tokenizer, p, max_new_tokens, sandbox), answer(large, tokenizer, p, max_new_tokens,
                                                                             sandbox))
        out.append(pair)
        if progress is not None:
            progress(f"[{i + 1}/{len(problems)}] {p['task_id']}: small {pair[0].self_test} margin "
                     f"{pair[0].margin:.2f} passed={pair[0].passed}, large passed={pair[1].passed}")
    return out


def escalates(small: Answer, tau: float) -> bool:
    """The self-test's verdict: the examples failed, or the margin is below τ."""
    return small.self_test == "failed" or small.margin < tau


def outcome(pairs: Sequence[tuple[Answer, Answer]], tau: float | str, e_small: float, e_large: float
            ) -> dict[str, Any]:
    """The cascade at ``tau`` (or ``"small"`` / ``"large"``: always that model): passes, share escalated and
    energy per problem (energies per generated token ``e_small``, ``e_large``)."""
    if not pairs:
        raise ConfigError("cascade: no problems to evaluate")
    passed = escalated = 0
    energy = 0.0
    for s, big in pairs:
        up = tau == "large" or (tau != "small" and escalates(s, float(tau)))
        if tau != "large":
            energy += s.tokens * e_small
        if up:
            energy += big.tokens * e_large
        escalated += up
        passed += (big if up else s).passed
    return {"policy": tau if isinstance(tau, str) else f"tau={tau:g}", "problems": len(pairs), "passed": passed,
            "escalated_share": round(escalated / len(pairs), 4), "energy_per_problem": energy / len(pairs)}


def choose_tau(pairs: Sequence[tuple[Answer, Answer]], e_small: float, e_large: float,
               taus: Sequence[float] = TAUS) -> float:
    """The cheapest τ whose pass count on ``pairs`` (validation problems) is the best any τ reaches."""
    rows = [(outcome(pairs, t, e_small, e_large), t) for t in taus]
    best = max(r["passed"] for r, _ in rows)
    return min(((r["energy_per_problem"], t) for r, t in rows if r["passed"] == best))[1]

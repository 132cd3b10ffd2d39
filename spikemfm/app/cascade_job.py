"""``spikemfm cascade`` and ``experiments/cascade.py``: a small spiking model answers HumanEval first, its
self-test (the prompt's doctest examples in the sandbox, and its confidence) decides whether the large one
answers instead (:mod:`spikemfm.lm.cascade`). τ is chosen on the validation problems (every ``val_every``-th),
reported on the others beside always-small and always-large."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from spikemfm.errors import ConfigError


@dataclass(frozen=True)
class CascadeConfig:
    """Which models, problems and energy figures a cascade run uses."""

    model: str = "smollm2-135m"
    small_bits: int = 4
    large_bits: int = 8
    problems: int | None = 20
    val_every: int = 2
    max_new_tokens: int = 128
    profile: str = "loihi2"
    energy_tokens: int = 4
    answer_path: str = "qann"  # the SNN's tokens and logits equal its QANN's (every pass settles): same answers

    def __post_init__(self) -> None:
        for name in ("small_bits", "large_bits", "val_every", "max_new_tokens", "energy_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"CascadeConfig.{name}={v!r}: a positive integer")
        if self.val_every < 2:
            raise ConfigError(f"CascadeConfig.val_every={self.val_every}: at least 2 (a validation and a test share)")
        if self.answer_path not in ("qann", "snn"):
            raise ConfigError(f"CascadeConfig.answer_path={self.answer_path!r}: 'qann' or 'snn'")
        if self.small_bits >= self.large_bits:
            raise ConfigError(f"small_bits={self.small_bits} >= large_bits={self.large_bits}: the small model "
                              "must be the cheaper one")


def token_energy(snn: Any, tok: Any, prompt: str, cfg: CascadeConfig) -> float:
    """nJ per decoded token of ``snn`` on the profile (a chip: its system estimate, static power included; a dense
    or operation profile: the operations), from ``energy_tokens`` greedy tokens after ``prompt``."""
    import torch

    from spikemfm.energy import load_profile
    from spikemfm.energy.system import CHIP_TERMS, terms
    from spikemfm.lm.energy import Priced
    from spikemfm.lm.generate import generate

    p = load_profile(cfg.profile)
    priced = Priced(snn, [p], p)
    generate(priced, torch.tensor([tok(prompt).input_ids]), cfg.energy_tokens + 1)
    t = priced.last.totals
    chip = not terms(p, CHIP_TERMS)[1]
    return (t["system_nj"] if chip else t[f"{p.name}_nj"]) / t["passes"]


def run_cascade(cfg: CascadeConfig, out: str | Path, progress: Callable[[str], None] | None = print,
                plot: Callable[[list[dict], Path], None] | None = None) -> list[dict[str, Any]]:
    """Builds both models (QANN and SNN), answers every problem with both on ``answer_path``, prices a token of each
    SNN, chooses τ on validation, writes ``cascade.*`` (validation rows, then the policies on the test problems)
    and ``answers.*`` (and ``plot(rows, path)``'s figure) as one output set."""
    from spikemfm.core.io import check_out_dir, output_set, save_table
    from spikemfm.lm.build import build_paths
    from spikemfm.lm.cascade import TAUS, attempt_both, choose_tau, outcome
    from spikemfm.lm.humaneval import load_problems

    check_out_dir(out)
    problems = load_problems(cfg.problems)
    models, tok = {}, None
    for size, bits in (("small", cfg.small_bits), ("large", cfg.large_bits)):
        built, tok = build_paths(cfg.model, ("qann", "snn"), bits)
        models[size] = (built[cfg.answer_path], token_energy(built["snn"], tok, problems[0]["prompt"], cfg))
    (small, e_small), (large, e_large) = models["small"], models["large"]
    pairs = attempt_both(small, large, tok, problems, cfg.max_new_tokens, progress=progress)
    val = [p for i, p in enumerate(pairs) if i % cfg.val_every == 0]
    test = [p for i, p in enumerate(pairs) if i % cfg.val_every != 0]
    tau = choose_tau(val, e_small, e_large)
    rows = [{"split": "validation", **outcome(val, t, e_small, e_large)} for t in TAUS]
    rows += [{"split": "test", **outcome(test, policy, e_small, e_large)} for policy in ("small", "large", tau)]
    large = {"validation": outcome(val, "large", e_small, e_large)["energy_per_problem"],
             "test": rows[-2]["energy_per_problem"]}  # each split against its own always-large
    for r in rows:
        big = large[r["split"]]
        r["energy_vs_large"] = round(r["energy_per_problem"] / big, 4) if big else None
        r["energy_per_problem"] = round(r["energy_per_problem"], 1)
    config = {**asdict(cfg), "tau": tau, "e_small_nj_per_token": e_small, "e_large_nj_per_token": e_large}
    answers = [{"task_id": s.task_id, "split": "validation" if i % cfg.val_every == 0 else "test",
                **{f"small_{k}": v for k, v in asdict(s).items() if k != "task_id"},
                **{f"large_{k}": v for k, v in asdict(b).items() if k not in ("task_id", "self_test")}}
               for i, (s, b) in enumerate(pairs)]
    with output_set(Path(out)) as stage:
        save_table(stage, "cascade", rows, config, f"{cfg.model}: {cfg.small_bits}-bit -> {cfg.large_bits}-bit "
                   f"spiking cascade on HumanEval (tau={tau:g} chosen on validation), energy per problem (nJ)")
        save_table(stage, "answers", answers, config, "every problem's answers, self-test and margins")
        if plot is not None:  # inside the set: the figure commits with its tables
            plot(rows, stage / "cascade.png")
    return rows

"""``spikemfm evaluate`` for causal LMs: HumanEval pass@1 (greedy, completions run in the sandbox) or
perplexity on a file / folder of source (``code:PATH``), per path (FP32, QANN, SNN)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spikemfm.errors import ConfigError
from spikemfm.lm.build import PATHS, SMOOTH


@dataclass(frozen=True)
class LMEvalConfig:
    """What an LM evaluation runs.

    Attributes:
        data: ``humaneval`` or ``code:PATH`` (a source file or a folder of ``.py`` files).
        problems: HumanEval problems, the first ``problems`` in task order (None: all 164).
        paths: which of fp32 / qann / snn (a saved SNN file has only ``snn``).
        bits, smooth: the QANN's bits and SmoothQuant alpha (None: off) when a model name is given.
        max_new_tokens: the longest completion.
        window, windows: perplexity on at most ``windows`` windows of ``window`` tokens.
        timeout_s, memory_mib: the sandbox's limits per completion.
    """

    data: str = "humaneval"
    problems: int | None = None
    paths: tuple[str, ...] = PATHS
    bits: int = 8
    smooth: float | None = SMOOTH
    max_new_tokens: int = 256
    window: int = 256
    windows: int = 8
    timeout_s: float = 10.0
    memory_mib: int = 1024

    def __post_init__(self) -> None:
        if self.data != "humaneval" and not self.data.startswith("code:"):
            raise ConfigError(f"--data-set {self.data!r}: a causal LM takes humaneval or code:PATH")
        bad = [p for p in self.paths if p not in PATHS]
        if bad or not self.paths:
            raise ConfigError(f"--paths {list(self.paths)}: choose from {PATHS}")
        for name in ("max_new_tokens", "window", "windows", "bits"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')}={getattr(self, name)}: must be >= 1")
        if self.problems is not None and self.problems < 1:
            raise ConfigError(f"--problems={self.problems}: must be >= 1")


def saved_lm(model_file: str) -> tuple[Any, Any]:
    """(SpikingModel, tokenizer) of a causal LM saved by ``spikemfm convert``; one clear error for an encoder."""
    from spikemfm.app.jobs import load_saved

    snn, tok, _, _ = load_saved(model_file)
    if not snn.graph.causal_lm:
        raise ConfigError(f"{model_file}: {snn.graph.name} is not a causal language model (an encoder cannot "
                          "generate); convert smollm2-135m or hf-lm:<name or folder>")
    return snn, tok


def open_models(model: str, cfg: LMEvalConfig, progress: bool) -> tuple[dict[str, Any], Any]:
    """({path: model}, tokenizer) of a saved SNN file (path ``snn`` only) or a model name."""
    from spikemfm.app.jobs import is_model_file
    from spikemfm.lm.build import build_paths

    if is_model_file(model):
        if set(cfg.paths) != {"snn"}:
            raise ConfigError(f"{model} is a converted SNN: give --paths snn, or a model name for fp32 / qann")
        snn, tok = saved_lm(model)
        return {"snn": snn}, tok
    return build_paths(model, cfg.paths, cfg.bits, cfg.smooth, progress=progress)


def run_lm_evaluate(model: str, cfg: LMEvalConfig, out: str | Path, progress: bool = True) -> list[dict[str, Any]]:
    """Evaluates and writes ``evaluate.{json,csv,md}`` (and ``attempts.*`` for HumanEval) as one set."""
    from spikemfm.core.io import check_out_dir, output_set, save_table

    check_out_dir(out)
    if cfg.data.startswith("code:"):
        from spikemfm.data.code import source_files

        files = source_files(cfg.data[5:])  # a bad path fails before any model loads
    else:
        from spikemfm.lm.humaneval import load_problems

        problems = load_problems(cfg.problems)
    models, tok = open_models(model, cfg, progress)
    config = {"model": model, **asdict(cfg)}
    with output_set(Path(out)) as stage:
        if cfg.data.startswith("code:"):
            rows = _perplexities(models, tok, files, cfg, progress)
            save_table(stage, "evaluate", rows, config, f"{model}: perplexity on {cfg.data}")
            return rows
        rows, attempts = _humaneval(models, tok, problems, cfg, progress)
        save_table(stage, "evaluate", rows, config, f"{model}: HumanEval pass@1 (greedy), {len(problems)} problems")
        save_table(stage, "attempts", attempts, config, f"{model}: HumanEval completions and verdicts")
    return rows


def _perplexities(models, tok, files, cfg: LMEvalConfig, progress: bool) -> list[dict[str, Any]]:
    from spikemfm.data.code import code_windows
    from spikemfm.lm.perplexity import perplexity

    windows = code_windows(files, tok, cfg.window, cfg.windows)
    ppl = {p: perplexity(m, windows, f"{p} perplexity", progress) for p, m in models.items()}
    return [{"path": p, "perplexity": v, "windows": windows.shape[0], "window": cfg.window,
             "vs_fp32": v / ppl["fp32"] - 1 if "fp32" in ppl else None,
             "equals_qann": (v == ppl["qann"]) if "qann" in ppl and p == "snn" else None} for p, v in ppl.items()]


def _humaneval(models, tok, problems, cfg: LMEvalConfig, progress: bool):
    from spikemfm.lm.humaneval import solve, summarize
    from spikemfm.lm.sandbox import SandboxConfig

    say = (lambda s: print(s, flush=True)) if progress else None  # noqa: E731
    attempts = solve(models, tok, problems, cfg.max_new_tokens, SandboxConfig(cfg.timeout_s, cfg.memory_mib), say)
    rows = [{"task_id": a.task_id, "path": a.path, "status": a.status, "new_tokens": a.new_tokens,
             "mean_steps": round(a.mean_steps, 3), "exact": a.exact, "completion": a.completion} for a in attempts]
    return summarize(attempts), rows


def run_lm_energy(model: str, profiles: list[Any], tokens: int, out: str | Path, bits: int = 8,
                  max_spikes: int | None = None, prompt_tokens: int = 64, progress: bool = True,
                  systems: tuple[tuple[int, float | None], ...] = (), loaded: tuple[Any, Any] | None = None
                  ) -> list[dict]:
    """Energy per generated token of a causal LM's SNN (a name, converted here, or a saved file; ``loaded``: its
    (SpikingModel, tokenizer) when the caller has read the file already) on each profile:
    ``tokens`` greedy tokens after a ``prompt_tokens``-token prompt from the standard library's test split.
    Writes ``energy_summary.*`` (per profile: medians over tokens) and ``energy_tokens.*`` (every token)."""
    from spikemfm.core.io import check_out_dir, output_set, save_table
    from spikemfm.data.code import code_windows, stdlib_files
    from spikemfm.energy.system import system_medians
    from spikemfm.lm.energy import per_token, token_reports

    check_out_dir(out)
    if tokens < 1 or prompt_tokens < 1:
        raise ConfigError(f"--inputs={tokens} (tokens decoded) and the prompt's {prompt_tokens} tokens must be >= 1")
    cfg = LMEvalConfig(paths=("snn",), bits=bits)
    if loaded is not None:
        models, tok = {"snn": loaded[0]}, loaded[1]
    else:
        from spikemfm.app.jobs import is_model_file
        from spikemfm.lm.build import build_paths

        models, tok = open_models(model, cfg, progress) if is_model_file(model) else \
            build_paths(model, ("snn",), bits, cfg.smooth, max_spikes=max_spikes, progress=progress)
    prompt = code_windows(stdlib_files("test"), tok, prompt_tokens, 1)
    rows = token_reports(models["snn"], prompt, tokens, profiles, systems, model)
    summary = system_medians(rows) if systems else per_token(rows)
    config = {"model": model, "profiles": [getattr(p, "name", str(p)) for p in profiles], "tokens": tokens,
              "bits": bits, "max_spikes": max_spikes, "prompt_tokens": prompt_tokens}
    with output_set(Path(out)) as stage:
        save_table(stage, "energy_summary", summary, config, f"{model}: energy per generated token (nJ), median "
                   f"over {tokens} tokens after a {prompt_tokens}-token prompt; operations only (weights on chip)")
        save_table(stage, "energy_tokens", rows, config, f"{model}: energy of every generated token (nJ)")
    return summary

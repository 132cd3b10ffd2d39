"""A small draft LM distilled from a causal LM on source code, sharing its tokenizer: draft (c) of speculative
decoding (:mod:`spikemfm.lm.speculative`).

Why distil on the teacher's argmax: greedy speculative decoding keeps a drafted token iff it equals the target's
greedy choice, so the objective that raises acceptance is cross-entropy against the teacher's top-1 token at every
position of real code (teacher forcing), not the code's own next token.

Why start from the teacher: the draft is the teacher's architecture with ``layers`` blocks, initialised from its
first blocks, final norm and (tied, frozen) embedding / head. Its hidden states live in the teacher's basis from
the first step, and the head — most of a 135M model's parameters — needs no training. The draft is an ordinary
Hugging Face model: saved with the tokenizer, it loads as ``hf-lm:<folder>`` and quantizes / converts like the
target.

Two kinds of training windows, both cut from the standard library's **calibration** split only
(:mod:`spikemfm.data.code`): real code (labels: the teacher's argmax at every position), and *generated* windows —
a code prefix continued greedily by the teacher for ``new_tokens`` tokens (sequence-level distillation, Kim &
Rush 2016): speculation is judged on the target's own greedy path, which is more regular than human code, so
windows of that path are the in-distribution data. The held-out agreement is measured on validation windows,
never on the test files. A draft can also be trained further from an earlier one (``init``).
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from spikemfm.errors import ConfigError


@dataclass(frozen=True)
class DraftConfig:
    """How to distil a draft: ``layers`` blocks; ``windows`` code windows and ``generated`` generated windows
    (their last ``new_tokens`` the teacher's greedy continuation) of ``length`` tokens, ``epochs`` passes over them
    in batches of ``batch``; AdamW at ``lr`` with linear warm-up over ``warmup`` steps then
    cosine decay to zero; ``val_windows`` validation windows for the held-out agreement."""

    layers: int = 2
    windows: int = 1024
    generated: int = 0
    new_tokens: int = 192
    length: int = 256
    batch: int = 8
    epochs: int = 3
    lr: float = 2e-3
    warmup: int = 20
    val_windows: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("layers", "batch", "epochs", "val_windows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"DraftConfig.{name} = {getattr(self, name)}: must be at least 1")
        if self.windows < 0 or self.generated < 0 or self.windows + self.generated < 1:
            raise ConfigError(f"DraftConfig.windows = {self.windows}, generated = {self.generated}: give ≥ 0 of "
                              "each and at least one window in all")
        if self.length < 2:
            raise ConfigError(f"DraftConfig.length = {self.length}: need at least 2 tokens per window")
        if self.generated and not 1 <= self.new_tokens < self.length:
            raise ConfigError(f"DraftConfig.new_tokens = {self.new_tokens}: give 1 … {self.length - 1} (a prefix of "
                              "real code must remain)")
        if not 0 < self.lr < 1:
            raise ConfigError(f"DraftConfig.lr = {self.lr}: give a learning rate in (0, 1)")
        if self.warmup < 0:
            raise ConfigError(f"DraftConfig.warmup = {self.warmup}: must be ≥ 0")


def distill_windows(teacher: nn.Module, tokenizer: Any, cfg: DraftConfig,
                    log: Callable[[str], None] = print) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held out): ``cfg.windows`` code windows and ``cfg.generated`` generated ones (:func:`continued`),
    drawn (seeded, disjoint) from every calibration file's windows; the first ``cfg.val_windows`` validation
    windows."""
    from spikemfm.data.code import code_windows, stdlib_files

    pool = code_windows(stdlib_files("calibration"), tokenizer, cfg.length)
    if cfg.windows + cfg.generated > pool.shape[0]:
        raise ConfigError(f"{cfg.windows} + {cfg.generated} training windows: the calibration files hold "
                          f"{pool.shape[0]} of {cfg.length} tokens")
    order = torch.randperm(pool.shape[0], generator=torch.Generator().manual_seed(cfg.seed))
    train = pool[order[:cfg.windows]]
    if cfg.generated:
        prefixes = pool[order[cfg.windows:cfg.windows + cfg.generated], :cfg.length - cfg.new_tokens]
        train = torch.cat([train, continued(teacher, prefixes, cfg.new_tokens, 32, log)])
    val = code_windows(stdlib_files("validation"), tokenizer, cfg.length, cfg.val_windows)
    return train, val


@torch.no_grad()
def continued(teacher: nn.Module, prefixes: torch.Tensor, new_tokens: int, batch: int,
              log: Callable[[str], None] = print) -> torch.Tensor:
    """Code prefixes (P, Lp) continued greedily by the teacher for exactly ``new_tokens`` tokens: (P, Lp + new).
    Hugging Face ``generate`` with its KV cache (batched: the prefixes share one length, so no padding)."""
    out = []
    for i in range(0, prefixes.shape[0], batch):
        x = prefixes[i:i + batch]
        out.append(teacher.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=new_tokens,
                                    min_new_tokens=new_tokens, do_sample=False, pad_token_id=0))
        log(f"teacher continuations {min(i + batch, prefixes.shape[0])}/{prefixes.shape[0]}")
    return torch.cat(out)


def distill_draft(name: str, cfg: DraftConfig, out: str | Path, log: Callable[[str], None] = print,
                  init: str | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """Distils a draft of the causal LM ``name`` (``smollm2-135m``, ``hf-lm:<name or folder>``) on the standard
    library's calibration files — from the teacher's first blocks, or further from the draft ``init``
    (``hf-lm:<folder>``) — and saves it with the tokenizer to ``out``: (folder, history)."""
    import spikemfm

    teacher = spikemfm.load(name).eval()
    tok = spikemfm.models.load_tokenizer(name)
    start = None if init is None else spikemfm.load(init)
    if start is not None and len(blocks(start)) != cfg.layers:
        raise ConfigError(f"init draft {init} has {len(blocks(start))} block(s): give layers = {len(blocks(start))}")
    train, val = distill_windows(teacher, tok, cfg, log)
    log(f"{train.shape[0]} training windows of {cfg.length} tokens ({cfg.generated} generated), "
        f"{val.shape[0]} held out")
    draft, history = train_draft(teacher, train, val, cfg, log, start)
    return save_draft(draft, tok, out, cfg), history


def blocks(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a LLaMA / Qwen2 / Mistral-style causal LM (``model.model.layers``)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ConfigError(f"{type(model).__name__}: no model.layers; a draft can be distilled from LLaMA-style "
                          "causal LMs (LLaMA, Qwen2, Mistral)")
    return layers


def init_draft(teacher: nn.Module, layers: int) -> nn.Module:
    """The teacher's architecture cut to ``layers`` blocks, initialised from its first blocks, norm and embedding;
    the embedding (tied to the head when the teacher ties them) is frozen."""
    depth = len(blocks(teacher))
    if not 1 <= layers < depth:
        raise ConfigError(f"draft layers = {layers}: the teacher has {depth} blocks; give 1 … {depth - 1}")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = layers
    if hasattr(config, "quantization_config"):  # a GGUF teacher is de-quantized on load: the draft's weights are float
        del config.quantization_config
    if getattr(config, "layer_types", None) is not None:  # per-layer attention kinds (Qwen2) follow the cut
        config.layer_types = list(config.layer_types)[:layers]
    draft = type(teacher)(config)
    state = {k: v for k, v in teacher.state_dict().items()
             if not k.startswith("model.layers.") or int(k.split(".")[2]) < layers}
    draft.load_state_dict(state)
    draft.get_input_embeddings().weight.requires_grad_(False)
    return draft


@torch.no_grad()
def argmax_labels(model: nn.Module, windows: torch.Tensor, batch: int,
                  progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """The model's greedy next token at every position of every window (W, L)."""
    model.eval()
    out = []
    for i in range(0, windows.shape[0], batch):
        out.append(model(windows[i:i + batch]).logits.argmax(-1))
        if progress:
            progress(min(i + batch, windows.shape[0]), windows.shape[0])
    return torch.cat(out)


def agreement(model: nn.Module, windows: torch.Tensor, labels: torch.Tensor, batch: int) -> float:
    """Share of positions where ``model``'s greedy token equals ``labels`` (the teacher's)."""
    return (argmax_labels(model, windows, batch) == labels).float().mean().item()


def schedule(step: int, total: int, cfg: DraftConfig) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to zero."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    return 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup) / max(1, total - cfg.warmup)))


def train_draft(teacher: nn.Module, train: torch.Tensor, val: torch.Tensor, cfg: DraftConfig,
                log: Callable[[str], None] = print, draft: nn.Module | None = None) -> tuple[nn.Module, list[dict]]:
    """(draft, history): a draft (``draft``, or :func:`init_draft`'s) distilled on ``train`` windows (W, L) against
    the teacher's argmax; the history holds the loss per step and the held-out agreement on ``val`` before
    training and after every epoch."""
    torch.manual_seed(cfg.seed)
    labels = argmax_labels(teacher, train, cfg.batch, lambda i, n: log(f"teacher labels {i}/{n}"))
    val_labels = argmax_labels(teacher, val, cfg.batch)
    if draft is None:
        draft = init_draft(teacher, cfg.layers)
    elif draft.get_input_embeddings().weight.shape != teacher.get_input_embeddings().weight.shape:
        raise ConfigError(f"draft to train further: its embedding {tuple(draft.get_input_embeddings().weight.shape)}"
                          f" differs from the teacher's {tuple(teacher.get_input_embeddings().weight.shape)}; "
                          "a draft must share the teacher's tokenizer")
    else:
        draft.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in draft.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, cfg.lr, weight_decay=0.0)
    per_epoch = math.ceil(train.shape[0] / cfg.batch)
    total = per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: schedule(s, total, cfg))
    history = [{"epoch": 0, "step": 0, "val_agreement": round(agreement(draft, val, val_labels, cfg.batch), 4)}]
    log(f"draft of {cfg.layers} block(s): held-out agreement before training {history[0]['val_agreement']}")
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        draft.train()
        order = torch.randperm(train.shape[0])
        for i in range(0, train.shape[0], cfg.batch):
            idx = order[i:i + cfg.batch]
            logits = draft(train[idx]).logits
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels[idx].flatten())
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step(), sched.step(), opt.zero_grad()
            step += 1
            history.append({"epoch": epoch, "step": step, "loss": round(loss.item(), 4)})
            if step % 10 == 0:
                log(f"epoch {epoch} step {step}/{total} loss {loss.item():.3f}")
        history.append({"epoch": epoch, "step": step,
                        "val_agreement": round(agreement(draft, val, val_labels, cfg.batch), 4)})
        log(f"epoch {epoch}: held-out agreement {history[-1]['val_agreement']}")
    draft.eval()
    return draft, history


def save_draft(draft: nn.Module, tokenizer: Any, folder: str | Path, cfg: DraftConfig | None = None) -> Path:
    """Saves the draft and the teacher's tokenizer to ``folder`` (loadable as ``hf-lm:<folder>``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if getattr(draft, "hf_quantizer", None) is not None:  # loaded from a folder whose config names the GGUF file
        draft.hf_quantizer = None
    if hasattr(draft.config, "quantization_config"):
        del draft.config.quantization_config
    draft.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if cfg is not None:
        import json

        (folder / "draft_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    return folder

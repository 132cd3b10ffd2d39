"""A multimodal model that sees and writes (LLaVA-style, Liu et al. 2023): an image tower's embedding → a learned
projector → k visual tokens prepended to a text prompt → a causal LM writes the description.

Only the projector is trained (the tower and the LM stay frozen): a linear map from the tower's L2-normalised
embedding to k vectors of the LM's width, each rescaled to the root-mean-square of the LM's token embeddings so
that the visual tokens sit in the range the LM's (and its QANN's first quantizers') inputs were calibrated on.
The loss is the LM's cross-entropy of the caption's words after ``[visual tokens] + prompt``.

The same projector serves every path: the float tower and LM, the QANN tower and QANN LM, or the spiking tower
and spiking LM (the projector itself is one small float matrix between them, run on the host). With exact
spiking components (tower and LM settled), the SNN's caption equals the QANN's bit for bit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spikemfm.errors import ConfigError
from spikemfm.lm.runners import Generation, margin, record

PROMPT = "A photo of a"


class Projector(nn.Module):
    """y = rms · u / ‖u‖_rms per visual token, u = W e + b reshaped to (k, D): e the tower's unit embedding."""

    def __init__(self, in_dim: int, width: int, k: int, rms: float) -> None:
        super().__init__()
        if k < 1:
            raise ConfigError(f"Projector: k={k} visual tokens; give at least 1")
        self.k, self.width, self.rms = k, width, float(rms)
        self.proj = nn.Linear(in_dim, k * width)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        u = self.proj(F.normalize(emb.float(), dim=-1)).unflatten(-1, (self.k, self.width))
        return self.rms * u / u.pow(2).mean(-1, keepdim=True).clamp_min(1e-12).sqrt()


@dataclass(frozen=True)
class TrainConfig:
    """Projector training: ``steps`` Adam steps of ``batch`` images at ``lr``; validation loss every ``every``
    steps on the held-out images — the projector kept is the one with the lowest (chosen on validation)."""

    k: int = 4
    steps: int = 120
    batch: int = 16
    lr: float = 2e-3
    every: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        for n in ("k", "steps", "batch", "every"):
            if getattr(self, n) < 1:
                raise ConfigError(f"TrainConfig.{n}={getattr(self, n)}: must be >= 1")
        if not self.lr > 0:
            raise ConfigError(f"TrainConfig.lr={self.lr}: must be > 0")


def token_rms(lm: nn.Module) -> float:
    """Root-mean-square of the LM's token embedding vectors (the scale visual tokens are given)."""
    return float(lm.get_input_embeddings().weight.detach().float().pow(2).mean(-1).sqrt().mean())


def caption_batch(lm: nn.Module, tok: Any, vis: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
    """The LM's cross-entropy of each caption's tokens (then EOS) after ``[vis] + PROMPT`` (mean over tokens)."""
    emb = lm.get_input_embeddings()
    prompt = torch.tensor(tok(PROMPT).input_ids)
    targets = [torch.tensor(tok(c).input_ids + [tok.eos_token_id]) for c in captions]
    width = max(len(t) for t in targets)
    ids = torch.stack([torch.cat([prompt, F.pad(t, (0, width - len(t)), value=tok.eos_token_id)]) for t in targets])
    labels = torch.stack([F.pad(t, (0, width - len(t)), value=-100) for t in targets])
    x = torch.cat([vis, emb(ids)], 1)
    logits = lm(inputs_embeds=x).logits[:, vis.shape[1] + len(prompt) - 1:-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def train_projector(lm: nn.Module, tok: Any, feats: torch.Tensor, captions: Sequence[str], val_feats: torch.Tensor,
                    val_captions: Sequence[str], cfg: TrainConfig, progress: Callable[[str], None] | None = None
                    ) -> tuple[Projector, list[dict]]:
    """(the projector with the lowest validation loss, the history of (step, train loss, validation loss))."""
    torch.manual_seed(cfg.seed)
    for p in lm.parameters():
        p.requires_grad_(False)
    proj = Projector(feats.shape[-1], lm.config.hidden_size, cfg.k, token_rms(lm))
    opt = torch.optim.Adam(proj.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    best, best_state, history = float("inf"), None, []
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(0, len(feats), (cfg.batch,), generator=g)
        loss = caption_batch(lm, tok, proj(feats[idx]), [captions[i] for i in idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % cfg.every == 0 or step == cfg.steps:
            with torch.no_grad():
                val = float(caption_batch(lm, tok, proj(val_feats), list(val_captions)))
            history.append({"step": step, "train_loss": round(loss.item(), 4), "val_loss": round(val, 4)})
            if val < best:
                best, best_state = val, {k: v.clone() for k, v in proj.state_dict().items()}
            if progress is not None:
                progress(f"k={cfg.k} step {step}: train {loss.item():.3f} validation {val:.3f}")
    proj.load_state_dict(best_state)
    return proj.eval(), history


def input_embeddings(model: Any, ids: torch.Tensor, start: int) -> torch.Tensor:
    """Token embeddings of ``ids`` at positions start … for a float LM, its QANN or its SNN."""
    graph = getattr(model, "graph", None)
    if graph is None:
        return model.get_input_embeddings()(ids)
    from spikemfm.ir.decoder import embed_at

    return embed_at(graph.embed, ids, start, torch.float64)


@torch.no_grad()
def describe(model: Any, runner: Any, vis: torch.Tensor, tok: Any, max_new_tokens: int = 4) -> Generation:
    """Greedy text after ``[vis] + PROMPT`` (batch 1): the prefill runs the visual tokens as input embeddings."""
    prompt = torch.tensor([tok(PROMPT).input_ids])
    k = vis.shape[1]
    x0 = torch.cat([vis.to(torch.float64), input_embeddings(model, prompt, k).to(torch.float64)], 1)
    ids = torch.cat([torch.zeros(1, k, dtype=torch.long), prompt], 1)  # placeholders where x0 gives the input
    gen = Generation(ids, ids.shape[1], runner.path)
    logits, steps, spikes, settled = runner.run(ids, x0)
    record(gen, ids.shape[1], steps, spikes, settled)
    for _ in range(max_new_tokens):
        t = logits[:, -1].argmax(-1)
        gen.margins.append(margin(logits[:, -1]))
        gen.tokens = torch.cat([gen.tokens, t[:, None]], 1)
        if int(t) == tok.eos_token_id or len(gen.margins) == max_new_tokens:
            break
        logits, steps, spikes, settled = runner.run(t[:, None])
        record(gen, 1, steps, spikes, settled)
    return gen


def named_class(text: str, classes: Sequence[str]) -> int | None:
    """The class whose name appears first in ``text`` (whole words: "shirt" is not found in "t-shirt"), or None."""
    hits = []
    for c, name in enumerate(classes):
        m = re.search(rf"(?<![\w-]){re.escape(name.lower())}(?![\w-])", text.lower())
        if m:
            hits.append((m.start(), -len(name), c))
    return min(hits)[2] if hits else None

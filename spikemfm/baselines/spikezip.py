"""spikingjelly 2.0's SpikeZIP-TF recipe (``SpikeZIPTFQANNRecipe``) on the same image tower.

SpikeZIP-TF (You et al., ICML 2024) converts a *SpikeZIP-compatible* quantized ViT: ReLU MLPs and
SpikeZIP quantizers (``s``, ``sym``, ``pos_max``, ``neg_min``, ``level``) at every point that becomes
spikes, trained with quantization-aware training. The recipe does no quantization or training itself;
it swaps each quantizer for an ``STBIFNode`` (one signed spike per step, bounded accumulated count),
each Linear/Conv for a temporal-difference layer whose bias is released over ``level`` steps, and
LayerNorm/softmax for temporal-difference units that evaluate the float function on accumulated input.

This module builds that QANN from an extracted tower (:func:`spikezip_qann`; GELU becomes ReLU, as in
the paper, so it needs :func:`spikezip_qat` to recover accuracy), converts it with spikingjelly
(:func:`spikezip_convert`) and reads accumulated outputs (:func:`spikezip_outputs`). Written here
rather than taken from the SpikeZIP-TF repository because that code is not on PyPI and its ViT is a
fork of timm 0.4; the module attributes follow exactly what the spikingjelly recipe reads.
"""
from __future__ import annotations

import copy
import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from spikemfm.baselines.spikingjelly_sta import impulse_outputs
from spikemfm.baselines.torch_tower import to_torch_module
from spikemfm.ir import nodes as N


class SpikeZIPQuant(nn.Module):
    """LSQ fake quantizer: y = clamp(⌊x/s + ½⌋, neg_min, pos_max) · s (straight-through rounding).

    ``sym``: levels −level/2 … level/2 − 1; otherwise 0 … level − 1. The step ``s`` is set from the
    first batch it sees (99.9th percentile of |x| / pos_max) and then learned (LSQ gradient scaling).
    STBIF rounds the same way: its residual starts at ½ and it fires while the residual is ≥ 1 or < 0.
    """

    def __init__(self, level: int, sym: bool) -> None:
        super().__init__()
        if level < 2:
            raise ValueError(f"SpikeZIPQuant: level={level} must be >= 2")
        self.level, self.sym = int(level), bool(sym)
        self.pos_max = float(level // 2 - 1 if sym else level - 1)
        self.neg_min = float(-(level // 2) if sym else 0)
        self.s = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.initialized):
            with torch.no_grad():
                flat = (x.abs() if self.sym else x.clamp_min(0)).detach().flatten()
                sample = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
                self.s.copy_(torch.quantile(sample.float(), 0.999).clamp_min(1e-6) / self.pos_max)
                self.initialized.fill_(True)
        g = 1.0 / math.sqrt(max(1, x[0].numel()) * self.pos_max)
        s = (self.s - self.s * g).detach() + self.s * g  # LSQ: the step's gradient scaled by g
        v = torch.clamp(x / s, self.neg_min, self.pos_max)
        return (torch.floor(v + 0.5) - v).detach().add(v) * s


class SpikeZIPAttention(nn.Module):
    """QANN attention with the attributes the recipe's ViT branch reads.

    q, k, v = quan(qkv(x)); A = attn_quan(softmax(q·scale kᵀ)); y = quan_proj(proj(after_attn_quan(A v))).
    """

    def __init__(self, a: N.Attention, mha: nn.MultiheadAttention, level: int) -> None:
        super().__init__()
        d = mha.embed_dim
        self.num_heads, self.head_dim = a.num_heads, d // a.num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(d, 3 * d, bias=mha.in_proj_bias is not None)
        self.proj = copy.deepcopy(mha.out_proj)
        with torch.no_grad():
            self.qkv.weight.copy_(mha.in_proj_weight)
            if mha.in_proj_bias is not None:
                self.qkv.bias.copy_(mha.in_proj_bias)
        self.quan_q, self.quan_k, self.quan_v = (SpikeZIPQuant(level, True) for _ in range(3))
        self.attn_quan = SpikeZIPQuant(level, False)
        self.after_attn_quan, self.quan_proj = SpikeZIPQuant(level, True), SpikeZIPQuant(level, True)
        self.attn_drop, self.proj_drop = nn.Identity(), nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = self.quan_q(q), self.quan_k(k), self.quan_v(v)
        attn = self.attn_quan(torch.softmax((q * self.scale) @ k.transpose(-1, -2), dim=-1))
        ctx = self.after_attn_quan(attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.quan_proj(self.proj(ctx))


class SpikeZIPBlock(nn.Module):
    """x ← x + attn(quan(ln1(x)));  x ← x + quan(fc2(quan(relu(fc1(quan(ln2(x)))))))."""

    def __init__(self, block: nn.Module, node: N.Block, level: int) -> None:
        super().__init__()
        self.norm1 = nn.Sequential(copy.deepcopy(block.ln1), SpikeZIPQuant(level, True))
        self.attn = SpikeZIPAttention(node.attn, block.attn, level)
        self.norm2 = nn.Sequential(copy.deepcopy(block.ln2), SpikeZIPQuant(level, True))
        self.mlp = nn.Sequential(copy.deepcopy(block.fc1), nn.ReLU(), SpikeZIPQuant(level, False),
                                 copy.deepcopy(block.fc2), SpikeZIPQuant(level, True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.proj = conv


class SpikeZIPViT(nn.Module):
    """The tower as a SpikeZIP-compatible QANN (timm-style attribute names the recipe patches)."""

    def __init__(self, graph: N.EncoderGraph, level: int) -> None:
        super().__init__()
        tower = to_torch_module(graph)
        self.level = level
        self.patch_embed = _PatchEmbed(copy.deepcopy(tower.patch))
        self.cls_token = nn.Parameter(tower.cls.detach().clone())
        self.pos_embed = nn.Parameter(tower.pos.detach().clone())
        self.blocks = nn.Sequential(*[SpikeZIPBlock(b, n, level) for b, n in zip(tower.blocks, graph.blocks)])
        self.norm = nn.Sequential(copy.deepcopy(tower.norm), SpikeZIPQuant(level, True))
        self.head = copy.deepcopy(tower.proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def spikezip_qann(graph: N.EncoderGraph, level: int, calib: Iterable[torch.Tensor]) -> SpikeZIPViT:
    """A SpikeZIP QANN of an image tower (GELU → ReLU), quantizer steps initialised on ``calib``."""
    qann = SpikeZIPViT(graph, level).eval()
    with torch.no_grad():
        qann(torch.cat(list(calib)))  # every quantizer initialises its step on the batch it sees
    return qann


def spikezip_qat(qann: SpikeZIPViT, images: torch.Tensor, labels: torch.Tensor, classifier: torch.Tensor,
                 logit_scale: float, epochs: int, lr: float = 5e-4, batch_size: int = 128,
                 seed: int = 0) -> list[float]:
    """Quantization-aware fine-tuning (weights and steps) with the zero-shot loss; returns epoch losses.

    Loss: cross-entropy of ``logit_scale · normalize(tower(x)) · classifierᵀ`` (the CLIP zero-shot
    logits against fixed class embeddings), label smoothing 0.1, AdamW with a cosine schedule.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(qann.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * math.ceil(len(labels) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    clf = classifier.float()
    losses = []
    qann.train()
    for epoch in range(epochs):
        order, total = torch.randperm(len(labels), generator=gen), 0.0
        bar = tqdm(order.split(batch_size), desc=f"SpikeZIP QAT epoch {epoch + 1}/{epochs}")
        for idx in bar:
            logits = logit_scale * F.normalize(qann(images[idx]), dim=-1) @ clf.T
            loss = F.cross_entropy(logits, labels[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        losses.append(total / len(labels))
    qann.eval()
    return losses


def spikezip_convert(qann: SpikeZIPViT, time_steps: int) -> nn.Module:
    """The QANN converted by spikingjelly's ``SpikeZIPTFQANNRecipe`` (multi-step mode, frozen)."""
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.ann2snn import ModuleConverter, SpikeZIPTFQANNRecipe

    frozen = copy.deepcopy(qann).eval().requires_grad_(False)
    for m in frozen.modules():
        if isinstance(m, SpikeZIPQuant):  # STBIF refuses thresholds that require grad
            s = m.s.detach().clone()
            del m.s
            m.register_buffer("s", s)
    recipe = SpikeZIPTFQANNRecipe(time_steps=time_steps, model_family="vit")
    snn = ModuleConverter(recipe=recipe, device="cpu").convert(frozen)
    functional.set_step_mode(snn, "m")
    return snn.eval()


def spikezip_outputs(snn: nn.Module, x: torch.Tensor, time_steps: int) -> torch.Tensor:
    """Accumulated outputs (T, B, D): the image at step 1 and zeros after, as the recipe's ViT expects
    (float32: STBIF's registered CPU kernel takes no other dtype)."""
    return impulse_outputs(snn, x.float(), time_steps)


def relu_graph(qann: SpikeZIPViT, graph: N.EncoderGraph) -> N.EncoderGraph:
    """``graph`` with the QANN's (fine-tuned) float weights and ReLU MLPs, for spikemfm's own converter."""
    from dataclasses import replace

    def lin(node: N.Linear, w: torch.Tensor, b: torch.Tensor | None) -> N.Linear:
        return replace(node, weight=w.detach().clone(), bias=None if b is None else b.detach().clone())

    def norm(node: N.LayerNorm, m: nn.LayerNorm) -> N.LayerNorm:
        return replace(node, weight=m.weight.detach().clone(), bias=m.bias.detach().clone())

    blocks = []
    for node, blk in zip(graph.blocks, qann.blocks):
        w, b = blk.attn.qkv.weight.chunk(3), (blk.attn.qkv.bias.chunk(3) if blk.attn.qkv.bias is not None
                                              else (None,) * 3)
        attn = replace(node.attn, q=lin(node.attn.q, w[0], b[0]), k=lin(node.attn.k, w[1], b[1]),
                       v=lin(node.attn.v, w[2], b[2]), o=lin(node.attn.o, blk.attn.proj.weight, blk.attn.proj.bias))
        mlp = replace(node.mlp, act="relu", fc1=lin(node.mlp.fc1, blk.mlp[0].weight, blk.mlp[0].bias),
                      fc2=lin(node.mlp.fc2, blk.mlp[3].weight, blk.mlp[3].bias))
        blocks.append(replace(node, ln1=norm(node.ln1, blk.norm1[0]), attn=attn, ln2=norm(node.ln2, blk.norm2[0]),
                              mlp=mlp))
    e = graph.embed
    embed = replace(e, weight=qann.patch_embed.proj.weight.detach().clone(),
                    bias=None if qann.patch_embed.proj.bias is None else qann.patch_embed.proj.bias.detach().clone(),
                    cls=qann.cls_token.detach().reshape(e.cls.shape).clone(),
                    pos=qann.pos_embed.detach().reshape(e.pos.shape).clone())
    r = graph.readout
    readout = replace(r, norm=norm(r.norm, qann.norm[0]), proj=lin(r.proj, qann.head.weight, qann.head.bias))
    return replace(graph, embed=embed, blocks=tuple(blocks), readout=readout)

"""A plain-PyTorch module of an extracted image tower, for third-party converters.

spikingjelly's transformer recipes trace a model with torch.fx and convert ``nn.Linear``,
``nn.LayerNorm``, ``nn.GELU`` and ``nn.MultiheadAttention`` modules; timm's ViT calls functional
layer norm and its own attention, which the recipes reject. :func:`to_torch_module` rebuilds the same
tower from the extracted graph out of exactly those modules (weights copied; outputs equal the
original to float rounding, checked in the tests), so every converter runs on the same model.
"""
from __future__ import annotations

import torch
from torch import nn

from spikemfm.errors import UnsupportedModuleError
from spikemfm.ir import nodes as N


def _linear(node: N.Linear) -> nn.Linear:
    m = nn.Linear(node.weight.shape[1], node.weight.shape[0], bias=node.bias is not None)
    with torch.no_grad():
        m.weight.copy_(node.weight)
        if node.bias is not None:
            m.bias.copy_(node.bias)
    return m


def _norm(node: N.LayerNorm) -> nn.LayerNorm:
    m = nn.LayerNorm(node.weight.shape[0], eps=node.eps)
    with torch.no_grad():
        m.weight.copy_(node.weight)
        m.bias.copy_(node.bias)
    return m


def _mha(a: N.Attention) -> nn.MultiheadAttention:
    d = a.q.weight.shape[1]
    if a.q.weight.shape[0] != d or a.causal:
        raise UnsupportedModuleError(f"{a.path}: needs square, non-causal attention for nn.MultiheadAttention")
    m = nn.MultiheadAttention(d, a.num_heads, batch_first=True, bias=a.q.bias is not None)
    with torch.no_grad():
        m.in_proj_weight.copy_(torch.cat([a.q.weight, a.k.weight, a.v.weight]))
        m.out_proj.weight.copy_(a.o.weight)
        if a.q.bias is not None:
            m.in_proj_bias.copy_(torch.cat([a.q.bias, a.k.bias, a.v.bias]))
        m.out_proj.bias.copy_(a.o.bias if a.o.bias is not None else torch.zeros(d))
    return m


class _Block(nn.Module):
    def __init__(self, b: N.Block) -> None:
        super().__init__()
        if not b.norm_first or b.mlp.act != "gelu":
            raise UnsupportedModuleError(f"{b.path}: only pre-LN blocks with exact GELU are rebuilt")
        self.ln1, self.attn, self.ln2 = _norm(b.ln1), _mha(b.attn), _norm(b.ln2)
        self.fc1, self.act, self.fc2 = _linear(b.mlp.fc1), nn.GELU(), _linear(b.mlp.fc2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        out, _unused = self.attn(h, h, h, need_weights=False)  # unpacked: the pattern spikingjelly's FX adapter accepts
        x = x + out
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class TorchImageTower(nn.Module):
    """conv patch embedding → [cls; tokens] + pos → pre-LN blocks → norm → cls pooling → projection."""

    def __init__(self, graph: N.EncoderGraph) -> None:
        super().__init__()
        e, r = graph.embed, graph.readout
        if graph.input_kind != "image" or e.cls is None or e.extra is not None or not e.pos_on_prefix \
                or r.pool != "cls" or e.norm is not None:
            raise UnsupportedModuleError(f"{graph.name}: only cls-pooled image towers without ln_pre are rebuilt")
        w = e.weight
        self.patch = nn.Conv2d(w.shape[1], w.shape[0], w.shape[-1], stride=w.shape[-1], bias=e.bias is not None)
        with torch.no_grad():
            self.patch.weight.copy_(w)
            if e.bias is not None:
                self.patch.bias.copy_(e.bias)
        self.cls = nn.Parameter(e.cls.detach().float().reshape(1, 1, -1).clone())
        self.pos = nn.Parameter(e.pos.detach().float()[None].clone())
        self.blocks = nn.Sequential(*[_Block(b) for b in graph.blocks])
        self.norm = _norm(r.norm) if r.norm is not None else nn.Identity()
        self.proj = _linear(r.proj) if r.proj is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        x = self.norm(self.blocks(x))
        return self.proj(x[:, 0:1, :].flatten(1))  # a slice: FX step-mode adapters reject integer getitem


def to_torch_module(graph: N.EncoderGraph) -> TorchImageTower:
    """The tower as plain ``nn.Conv2d`` / ``nn.Linear`` / ``nn.LayerNorm`` / ``nn.MultiheadAttention`` modules."""
    return TorchImageTower(graph).eval()

"""Structural pruning of attention heads and MLP hidden channels, with real removal, and recovery.

Pruning works on the extracted graph (:mod:`spikemfm.ir`), so one implementation serves timm
ViT/DeiT, open_clip (both towers) and Hugging Face BERT alike, and the result is exactly what
``quantize`` / ``convert`` consume. torch-pruning is not used: it prunes each framework's own
modules, and their attention modules differ (timm ``Attention`` with a fused qkv, open_clip's
``nn.MultiheadAttention`` with a packed in_proj, HF ``BertSelfAttention``), each needing its own
head-dimension handling, while the graph already exposes heads and channels uniformly.

Importance is measured on real data:
- head h of block i: the relative output MSE of the tower when that head's attention output is
  zeroed (ablation, one forward per head);
- MLP hidden channel c: E|a_c| · ‖W_fc2[:, c]‖₂, the mean magnitude of the channel's contribution to
  the block output (activation statistics × weight norm).
Removal slices q/k/v rows and o columns of the dropped heads, fc1 rows and fc2 columns of the
dropped channels: the Linear layers and the head count really shrink.
"""
from __future__ import annotations

import itertools

from dataclasses import dataclass, replace
from typing import Any, Iterable

import torch
from torch import nn

from spikemfm.core.checks import check_field_types
from spikemfm.convert.qann import as_graph
from spikemfm.errors import ConfigError
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.ir.float_ops import FloatOps
from spikemfm.ir.units.product import Product


@dataclass(frozen=True)
class PruneConfig:
    """How much to remove.

    Attributes:
        head_ratio: fraction of attention heads removed in every block (at least one head stays).
        mlp_ratio: fraction of MLP hidden channels removed in every block (at least one stays).
        block_ratios: (block index, head_ratio, mlp_ratio) triples overriding the defaults per block.
        max_batches: data batches used to measure importance.
    """

    head_ratio: float = 0.0
    mlp_ratio: float = 0.0
    block_ratios: tuple[tuple[int, float, float], ...] = ()
    max_batches: int = 4

    def __post_init__(self) -> None:
        check_field_types(self)
        pairs = [("head_ratio", self.head_ratio), ("mlp_ratio", self.mlp_ratio)]
        pairs += [(f"block_ratios[{b}]", r) for b, h, m in self.block_ratios for r in (h, m)]
        for name, r in pairs:
            if not isinstance(r, (int, float)) or not 0.0 <= r < 1.0:
                raise ConfigError(f"PruneConfig.{name}={r!r}: must lie in [0, 1) (1 would remove every head/channel)")
        if self.max_batches < 1:
            raise ConfigError("PruneConfig.max_batches must be >= 1")

    def ratios(self, block: int) -> tuple[float, float]:
        """(head ratio, MLP ratio) of ``block``."""
        for b, h, m in self.block_ratios:
            if b == block:
                return h, m
        return self.head_ratio, self.mlp_ratio


class GraphModel(nn.Module):
    """A tower held as a graph with trainable tensors (what :func:`prune` returns).

    ``forward(x)`` runs the float graph; ``quantize`` / ``convert`` accept it like any tower.
    """

    def __init__(self, graph: N.EncoderGraph) -> None:
        super().__init__()
        params: list[torch.Tensor] = []

        def leaf(t: torch.Tensor) -> nn.Parameter:  # every tensor becomes a trainable leaf
            params.append(nn.Parameter(t.detach().clone().float()))
            return params[-1]

        self.graph = N.map_tensors(graph, leaf)
        self.params = nn.ParameterList(params)

    def forward(self, x: Any) -> torch.Tensor:
        return engine.run(self.graph, engine.as_inputs(self.graph, x), FloatOps())

    def num_params(self) -> int:
        """Parameters of the tower (embeddings included)."""
        return sum(p.numel() for p in self.params)

    def nbytes(self, bytes_per_param: int = 4) -> int:
        """Bytes of all parameters at ``bytes_per_param``."""
        return self.num_params() * bytes_per_param


class _HeadAblation(FloatOps):
    def __init__(self, attn_path: str, head: int) -> None:
        super().__init__()
        self.attn_path, self.head = attn_path, head

    def product(self, node: Product, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = super().product(node, a, b)
        if node.kind == "context" and node.owner.path == self.attn_path:
            out[..., self.head, :, :] = 0
        return out


def head_importance(graph: N.EncoderGraph, batches: list[engine.Inputs]) -> list[torch.Tensor]:
    """Per block, (H,) relative output MSE of the tower when each head is zeroed."""
    with torch.no_grad():
        ref = [engine.run(graph, b, FloatOps()) for b in batches]
        den = sum(float((r ** 2).sum()) for r in ref)
        out = []
        for blk in graph.blocks:
            imp = torch.zeros(blk.attn.num_heads, dtype=torch.float64)
            for h in range(blk.attn.num_heads):
                ops = _HeadAblation(blk.attn.path, h)
                imp[h] = sum(float(((engine.run(graph, b, ops) - r) ** 2).sum()) for b, r in zip(batches, ref)) / den
            out.append(imp)
    return out


def channel_importance(graph: N.EncoderGraph, batches: list[engine.Inputs]) -> list[torch.Tensor]:
    """Per block, (hidden,) E|a_c| · ‖W_fc2[:, c]‖ of every MLP hidden channel."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def observe(point: str, x: torch.Tensor) -> None:
        if point.role is N.Role.ACT:
            flat = x.detach().abs().reshape(-1, x.shape[-1]).to(torch.float64)
            sums[point] = sums.get(point, 0) + flat.sum(0)
            counts[point] = counts.get(point, 0) + flat.shape[0]

    with torch.no_grad():
        for b in batches:
            engine.run(graph, b, FloatOps(observe=observe))
    return [sums[blk.mlp.point(N.Role.ACT)] / counts[blk.mlp.point(N.Role.ACT)] *
            blk.mlp.fc2.weight.detach().to(torch.float64).norm(dim=0) for blk in graph.blocks]


def _rows(lin: N.Linear, idx: torch.Tensor) -> N.Linear:
    return replace(lin, weight=lin.weight[idx], bias=None if lin.bias is None else lin.bias[idx])


def _keep(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    n = len(scores)
    keep = max(1, n - int(round(ratio * n)))
    return scores.argsort(descending=True)[:keep].sort().values


def _prune_block(blk: N.Block, heads: torch.Tensor, channels: torch.Tensor) -> N.Block:
    a, m = blk.attn, blk.mlp
    d = a.q.weight.shape[0] // a.num_heads
    rows = (heads[:, None] * d + torch.arange(d)).flatten()
    attn = replace(a, q=_rows(a.q, rows), k=_rows(a.k, rows), v=_rows(a.v, rows),
                   o=replace(a.o, weight=a.o.weight[:, rows]), num_heads=len(heads))
    mlp = replace(m, fc1=_rows(m.fc1, channels), fc2=replace(m.fc2, weight=m.fc2.weight[:, channels]))
    return replace(blk, attn=attn, mlp=mlp)


def prune(model: nn.Module | N.EncoderGraph, config: PruneConfig, data: Iterable[Any]) -> GraphModel:
    """Removes the least important heads and MLP channels of every block, measured on ``data``.

    Args:
        model: a supported tower, a :class:`GraphModel`, or an extracted graph.
        config: ratios to remove.
        data: iterable of real input batches (images, token ids or tokenizer outputs).
    """
    if not isinstance(config, PruneConfig):
        raise ConfigError(f"prune: config must be a PruneConfig, got {type(config).__name__}")
    data = iter(data)
    first = next(data, None)
    if first is None:
        raise ConfigError("prune: data yielded no batch; pass real input batches to measure importance")
    graph = as_graph(model, first)
    batches = [engine.as_inputs(graph, b) for b in itertools.islice(itertools.chain([first], data), config.max_batches)]
    ratios = [config.ratios(i) for i in range(len(graph.blocks))]
    gated = [b.mlp.path for (b, (_, mr)) in zip(graph.blocks, ratios) if mr and b.mlp.gate is not None]
    if gated:
        raise ConfigError(f"prune: MLP channel pruning of gated MLPs ({gated[0]}, ...) is not supported (the gate "
                          "and its norm would need their own importance); set mlp_ratio=0 (heads can be pruned)")
    # measure only what will be pruned (head ablation costs one forward per head)
    h_imp = head_importance(graph, batches) if any(h for h, _ in ratios) else None
    c_imp = channel_importance(graph, batches) if any(m for _, m in ratios) else None
    blocks = []
    for i, (blk, (hr, mr)) in enumerate(zip(graph.blocks, ratios)):
        heads = _keep(h_imp[i], hr) if h_imp is not None else torch.arange(blk.attn.num_heads)
        channels = _keep(c_imp[i], mr) if c_imp is not None else torch.arange(blk.mlp.fc1.weight.shape[0])
        blocks.append(_prune_block(blk, heads, channels))
    return GraphModel(replace(graph, blocks=tuple(blocks)))


def distill(student: GraphModel, teacher: nn.Module | N.EncoderGraph, data: Iterable[Any], steps: int = 200,
            lr: float = 1e-3, progress: bool = False) -> GraphModel:
    """Recovery: fine-tunes ``student`` to match the uncompressed ``teacher``'s outputs on real data.

    Loss: ‖s(x) − t(x)‖² / ‖t(x)‖² per batch (Adam); ``data`` is cycled until ``steps`` updates ran.
    """
    from tqdm.auto import tqdm

    data = list(data)
    if not data:
        raise ConfigError("distill: data yielded no batch; pass real input batches")
    t_graph = as_graph(teacher, data[0])
    batches = [engine.as_inputs(t_graph, b) for b in data]
    with torch.no_grad():
        targets = [engine.run(t_graph, b, FloatOps()) for b in batches]
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    student.train()
    for step in tqdm(range(steps), desc="distill", disable=not progress):
        x, y = batches[step % len(batches)], targets[step % len(batches)]
        loss = ((engine.run(student.graph, x, FloatOps()) - y) ** 2).sum() / (y ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    student.eval()
    return student

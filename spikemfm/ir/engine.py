"""The one forward definition of an :class:`EncoderGraph`, executed by interchangeable *ops*.

The graph fixes *what* is computed; an ops object fixes *how*: ``FloatOps`` (float reference, also
used for calibration), ``QANNOps`` (integer QANN) and ``SNNStepOps`` (one time step of the spiking
simulation, with the layers' state kept between steps). Functions index from the right.

An ops object provides:
    inject(x)                       the analog input current
    neuron(point, x)                quantizer / spiking neuron at quantization point ``point``
    linear(node, c)                 synaptic layer on the (quantized) input c
    product(node, a, b)             a spike×spike product (scaled Q·Kᵀ, A·V, g ⊙ v of a gated MLP): the kind named
                                    by the :class:`~spikemfm.ir.units.product.Product` node says what it computes
    activation(mlp, z)              the MLP nonlinearity (a LUT neuron in QANN/SNN)
    unit(node, x, mask)             a float unit on accumulated input (LayerNorm, RoPE, softmax, …): the kind
                                    registered for the node's type (:mod:`spikemfm.ir.units`) says what it computes

and may provide fused forms (the engine falls back to the composition where it does not):
    linear_heads(node, c, point, h) an attention operand: neuron(point, linear(node, c)) split into h heads
    linear_activation(mlp, c)       activation(mlp, linear(mlp.fc1, c))
and hooks for the steps the engine otherwise does itself (the netlist tracer observes them):
    residual(name, x, y)            the residual add x + y
    alias(y, x)                     y is x's neurons read again (grouped-query K / V repeated per query head)
    pool(readout, x, inputs)        token pooling (default :func:`pool`; the fixed-point ops pool in integers)
    constant(name, x)               a learned constant current (attention pooling's query; default: x itself)

Quantization points are :class:`~spikemfm.ir.nodes.Point` names: plain strings that also carry their role.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping, Protocol

import torch
import torch.nn.functional as F

from spikemfm.ir import nodes as N
from spikemfm.ir import units
from spikemfm.ir.units.pool import pool_tokens
from spikemfm.ir.units.product import Product
from spikemfm.ir.units.softmax import Softmax


@dataclass(frozen=True)
class Inputs:
    """A batch for a tower: ``pixels`` (B, C, H, W) for images, or ``ids`` (B, N) + ``mask`` (B, N)
    (+ ``types`` (B, N), the token-type / segment ids of sentence pairs)."""

    pixels: torch.Tensor | None = None
    ids: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    types: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int((self.pixels if self.pixels is not None else self.ids).shape[0])

    @property
    def device(self) -> torch.device:
        """Where the batch's pixels / token ids are."""
        return (self.pixels if self.pixels is not None else self.ids).device

    def head(self, n: int) -> "Inputs":
        """The first ``n`` inputs of the batch."""
        return self.map(lambda t: t[:n])

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Inputs":
        """The same batch with ``fn`` applied to every tensor it has (a slice, a device move)."""
        return Inputs(*(None if t is None else fn(t) for t in (self.pixels, self.ids, self.mask, self.types)))


def as_inputs(graph: N.EncoderGraph, x: Any) -> Inputs:
    """Normalises user input: an image tensor, an id tensor, or a mapping with input_ids/attention_mask."""
    if isinstance(x, Inputs):
        return x
    if graph.input_kind == "image":
        _check_image(graph, x)
        return Inputs(pixels=x)
    types = None
    if isinstance(x, Mapping) and isinstance(x.get("input_ids"), torch.Tensor):
        ids = x["input_ids"]
        mask = x.get("attention_mask")
        types = x.get("token_type_ids")
    elif isinstance(x, torch.Tensor):
        ids, mask = x, None
    else:
        raise ValueError(f"{graph.name}: token input must be (B, N) ids or a mapping with input_ids")
    _check_ids(graph, ids)
    pad = getattr(graph.embed, "mask_pad_id", None)
    if mask is None and pad is not None:  # the tower derives its padding from the ids (open_clip)
        mask = ids != pad
    return Inputs(ids=ids.long(), mask=None if mask is None else mask.long(),
                  types=None if types is None else types.long())


def _check_image(graph: N.EncoderGraph, x: Any) -> None:
    """Refuses what the tower would silently mis-read: wrong channels, sizes that are not whole patches (the
    convolution would crop them), an empty batch, NaN / infinite pixels (the SNN would run on garbage)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"{graph.name}: image input must be a float (B, C, H, W) tensor, got "
                         f"{type(x).__name__}{tuple(x.shape) if isinstance(x, torch.Tensor) else ''}")
    w = graph.embed.weight
    p = int(w.shape[-1])
    if x.shape[0] == 0:
        raise ValueError(f"{graph.name}: empty batch (0 images)")
    if x.shape[1] != w.shape[1] or x.shape[2] % p or x.shape[3] % p:
        raise ValueError(f"{graph.name}: images of shape {tuple(x.shape[1:])} do not fit the tower ({w.shape[1]} "
                         f"channels, sides a multiple of the patch size {p}); resize them to the tower's input")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{graph.name}: the images hold NaN or infinite pixels ({int((~torch.isfinite(x)).sum())} "
                         "values); clean the input")


def _check_ids(graph: N.EncoderGraph, ids: torch.Tensor) -> None:
    if ids.ndim != 2 or ids.shape[0] == 0 or ids.is_floating_point() or ids.is_complex():
        raise ValueError(f"{graph.name}: token ids must be a non-empty (B, N) integer tensor, got "
                         f"{ids.dtype} {tuple(ids.shape)}")
    vocab = int(graph.embed.word.shape[0])
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise ValueError(f"{graph.name}: token ids must lie in [0, {vocab}); got {int(ids.min())}..{int(ids.max())}")
    if ids.shape[1] > graph.embed.pos.shape[0]:
        raise ValueError(f"{graph.name}: {ids.shape[1]} tokens, the position table holds {graph.embed.pos.shape[0]}")


class Ops(Protocol):
    def inject(self, x: torch.Tensor) -> torch.Tensor: ...
    def neuron(self, point: str, x: torch.Tensor) -> torch.Tensor: ...
    def linear(self, node: N.Linear, c: torch.Tensor) -> torch.Tensor: ...
    def product(self, node: Product, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor: ...
    def activation(self, mlp: N.MLP, z: torch.Tensor) -> torch.Tensor: ...
    def unit(self, node: Any, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor: ...


def embed(node: N.PatchEmbed | N.TokenEmbed, inputs: Inputs, dtype: torch.dtype) -> torch.Tensor:
    """The encoding layer: analog input → initial residual stream (B, N, D)."""
    if isinstance(node, N.PatchEmbed):
        if inputs.pixels is None:
            raise ValueError(f"{node.path}: this tower takes images")
        w = node.weight.to(dtype)
        x = F.conv2d(inputs.pixels.to(dtype), w, None if node.bias is None else node.bias.to(dtype),
                     stride=w.shape[-1])
        x = x.flatten(2).transpose(1, 2)
        if x.shape[1] != node.patches:
            raise ValueError(f"{node.path}: image gives {x.shape[1]} patches, the position table is for "
                             f"{node.patches}")
        prefix = node.prefix()
        if not node.pos_on_prefix:
            x = x + node.pos.to(dtype)
        if prefix is not None:
            x = torch.cat([prefix.to(dtype).expand(x.shape[0], -1, -1), x], dim=1)
        if node.pos_on_prefix:
            x = x + node.pos.to(dtype)
    else:
        if inputs.ids is None:
            raise ValueError(f"{node.path}: this tower takes token ids")
        pos = positions(node, inputs.ids)
        if int(pos.max()) >= node.pos.shape[0]:
            raise ValueError(f"{node.path}: {inputs.ids.shape[1]} tokens exceed the {node.pos.shape[0]} positions")
        x = node.word.to(dtype)[inputs.ids] + node.pos.to(dtype)[pos]
        if node.types is not None:
            x = x + node.types.to(dtype)[inputs.types if inputs.types is not None else 0]
    x = units.kind_of(node.norm).forward(node.norm, x) if node.norm is not None else x
    if isinstance(node, N.TokenEmbed) and node.proj is not None:
        p = node.proj
        x = F.linear(x, p.weight.to(dtype), None if p.bias is None else p.bias.to(dtype))
    return x


def positions(node: N.TokenEmbed, ids: torch.Tensor) -> torch.Tensor:
    """Position ids of a token batch: 0 … N−1, or RoBERTa's pad-aware numbering when ``node.pad_id`` is set."""
    if node.pad_id is None:
        return torch.arange(ids.shape[-1], device=ids.device)
    real = (ids != node.pad_id).long()
    return real.cumsum(-1) * real + node.pad_id


def attention_mask(graph: N.EncoderGraph, inputs: Inputs, n: int) -> torch.Tensor | None:
    """Boolean mask (B or 1, 1, N, N), True where attention is blocked (causal and/or padding)."""
    mask = None
    if any(b.attn.causal for b in graph.blocks):
        mask = torch.ones(n, n, dtype=torch.bool, device=inputs.device).triu(1)[None, None]
    if inputs.mask is not None:
        pad = (inputs.mask == 0)[:, None, None, :]
        mask = pad if mask is None else (mask | pad)
    return mask


def _heads(x: torch.Tensor, h: int) -> torch.Tensor:
    return x.unflatten(-1, (h, x.shape[-1] // h)).transpose(-3, -2)  # (..., N, D) -> (..., H, N, d)


def head_major(point: str, x: torch.Tensor) -> bool:
    """Whether an attention operand's neuron input comes split into heads (..., H, N, d) rather than (..., N, D)
    (qk-norm / RoPE operands), so its counts are kept head-major and merged for ``layer_counts``."""
    return getattr(point, "role", None) in (N.Role.Q, N.Role.K, N.Role.V) and x.dim() >= 4


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(..., H, N, d) -> (..., N, D), the inverse of the split into attention heads."""
    return x.transpose(-3, -2).flatten(-2)


def linear_heads(ops: Ops, node: N.Linear, c: torch.Tensor, point: str, heads: int) -> torch.Tensor:
    """The neuron at ``point`` driven by synaptic layer ``node`` on input c, split into attention heads
    (..., H, N, d): the ops' fused form if it has one."""
    fused = getattr(ops, "linear_heads", None)
    if fused is not None:
        return fused(node, c, point, heads)
    return _heads(ops.neuron(point, ops.linear(node, c)), heads)


def _operand(ops: Ops, a: N.Attention, node: N.Linear, c: torch.Tensor, role: N.Role,
             between: tuple[Any, ...] = (), heads: int | None = None, start: int = 0) -> torch.Tensor:
    """An attention operand as head-major counts; qk-norm and RoPE (float units on the accumulated current) sit
    between the synaptic layer and the neuron. ``heads``: K / V heads (grouped-query); ``start``: the position of
    the first token (a decoder's cached prefix), which picks the rows of a RoPE table covering the context."""
    heads = a.num_heads if heads is None else heads
    between = tuple(u for u in between if u is not None)
    if not between:
        return linear_heads(ops, node, c, a.point(role), heads)
    x = _heads(ops.linear(node, c), heads)
    for u in between:
        x = ops.unit(at_positions(u, start, x.shape[-2]), x)
    return ops.neuron(a.point(role), x)


def at_positions(u: Any, start: int, n: int) -> Any:
    """A RoPE node cut to positions start … start+n−1 where its table covers a whole context (a causal LM's);
    any other node as it is."""
    if isinstance(u, N.Rope) and u.prefix == 0 and u.sin.shape[0] != n:
        if start + n > u.sin.shape[0]:
            raise ValueError(f"{u.path}: positions up to {start + n} exceed the {u.sin.shape[0]} of the RoPE table "
                             "(the model's context)")
        return replace(u, sin=u.sin[start:start + n], cos=u.cos[start:start + n])
    return u


def expand_kv(ops: Ops, a: N.Attention, x: torch.Tensor) -> torch.Tensor:
    """K / V heads (..., H_kv, N, d) repeated for the query heads that share them (grouped-query attention): the
    same neurons read by more heads, so the ops' ``alias(y, x)`` hook (the netlist tracer) learns y is x's."""
    group = a.num_heads // a.kv_heads
    if group == 1:
        return x
    y = x.repeat_interleave(group, dim=-3)
    hook = getattr(ops, "alias", None)
    return hook(y, x) if hook is not None else y


def scores(ops: Ops, a: N.Attention, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The scaled Q·Kᵀ of attention ``a`` (a spike×spike product in the SNN)."""
    return ops.product(Product(a.scores_name, "scores", a, (a.point(N.Role.Q), a.point(N.Role.K))), q, k)


def context(ops: Ops, a: N.Attention, p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A·V of attention ``a`` (a spike×spike product in the SNN)."""
    return ops.product(Product(a.context_name, "context", a, (a.point(N.Role.PROBS), a.point(N.Role.V))), p, v)


def attention(a: N.Attention, h: torch.Tensor, mask: torch.Tensor | None, ops: Ops, kv: Any = None) -> torch.Tensor:
    """Self-attention with every operand that becomes spikes passed through a neuron. ``kv``: a decoder's cache
    (``kv.start``, the position of the first token; ``kv.extend(a, k, v)``, the keys / values of the cached
    positions and these, :class:`spikemfm.ir.decoder.KVCache`)."""
    start = 0 if kv is None else kv.start
    c = ops.neuron(a.point(N.Role.ATTN_IN), h)
    q = _operand(ops, a, a.q, c, N.Role.Q, (a.q_norm, a.q_rope), start=start)
    k = _operand(ops, a, a.k, c, N.Role.K, (a.k_norm, a.k_rope), a.kv_heads, start)
    v = linear_heads(ops, a.v, c, a.point(N.Role.V), a.kv_heads)
    if kv is not None:
        k, v = kv.extend(a, k, v)
    if a.causal and (mask is None or mask.shape[-1] != k.shape[-2]):
        raise ValueError(f"{a.path}: causal attention needs the causal mask")
    p = ops.neuron(a.point(N.Role.PROBS), ops.unit(Softmax(a.softmax_name), scores(ops, a, q, expand_kv(ops, a, k)), mask))
    ctx = merge_heads(context(ops, a, p, expand_kv(ops, a, v)))
    ctx = ops.unit(a.norm, ctx) if a.norm is not None else ctx
    return ops.linear(a.o, ops.neuron(a.point(N.Role.CTX), ctx))


def mlp(m: N.MLP, h: torch.Tensor, ops: Ops) -> torch.Tensor:
    """fc1 → activation → fc2 with neurons on the spiking operands (gated: see :class:`~spikemfm.ir.nodes.MLP`)."""
    c = ops.neuron(m.point(N.Role.MLP_IN), h)
    if m.gate is not None:
        g = ops.activation(m, ops.linear(m.gate, c))
        v = ops.neuron(m.point(N.Role.VALUE), ops.linear(m.fc1, c))
        z = ops.product(Product(m.gate_name, "gate", m, (m.point(N.Role.ACT), m.point(N.Role.VALUE))), g, v)
        z = ops.unit(m.norm, z) if m.norm is not None else z
        return ops.linear(m.fc2, ops.neuron(m.point(N.Role.GATED), z))
    fused = getattr(ops, "linear_activation", None)
    return ops.linear(m.fc2, fused(m, c) if fused is not None else ops.activation(m, ops.linear(m.fc1, c)))


def residual(ops: Ops, name: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The residual add ``name``: x + y (synaptic currents summed), through the ops' ``residual`` hook if any."""
    hook = getattr(ops, "residual", None)
    return hook(name, x, y) if hook is not None else x + y


def attention_half(b: N.Block, x: torch.Tensor, mask: torch.Tensor | None, ops: Ops, kv: Any = None) -> torch.Tensor:
    """The attention half of a block with its residual add (and its LayerNorm: before if pre-LN, after if post-LN)."""
    if b.norm_first:
        return residual(ops, b.residual_name("attention"), x, attention(b.attn, ops.unit(b.ln1, x), mask, ops, kv))
    return ops.unit(b.ln1, residual(ops, b.residual_name("attention"), x, attention(b.attn, x, mask, ops, kv)))


def mlp_half(b: N.Block, x: torch.Tensor, ops: Ops) -> torch.Tensor:
    """The MLP half of a block with its residual add (and its LayerNorm)."""
    if b.norm_first:
        return residual(ops, b.residual_name("mlp"), x, mlp(b.mlp, ops.unit(b.ln2, x), ops))
    return ops.unit(b.ln2, residual(ops, b.residual_name("mlp"), x, mlp(b.mlp, x, ops)))


def block(b: N.Block, x: torch.Tensor, mask: torch.Tensor | None, ops: Ops, kv: Any = None) -> torch.Tensor:
    """One pre-LN or post-LN transformer block; residual adds sum the synaptic currents (``kv``: see
    :func:`attention`)."""
    return mlp_half(b, attention_half(b, x, mask, ops, kv), ops)


def pool(r: N.Readout, x: torch.Tensor, inputs: Inputs) -> torch.Tensor:
    """Token pooling (:func:`spikemfm.ir.units.pool.pool_tokens`, linear in x: it reads the accumulated stream)."""
    return pool_tokens(x, r.pool, r.prefix_tokens, r.eos_id, inputs.ids, inputs.mask)


def constant(ops: Ops, name: str, x: torch.Tensor) -> torch.Tensor:
    """A constant current (injected at step 1 and held), through the ops' ``constant`` hook if any."""
    hook = getattr(ops, "constant", None)
    return hook(name, x) if hook is not None else x


def attention_pool(ap: N.AttnPool, x: torch.Tensor, ops: Ops) -> torch.Tensor:
    """Attention pooling with a learned latent query (see :class:`~spikemfm.ir.nodes.AttnPool`): (..., N, D) →
    (..., D)."""
    a = ap.attn
    x = x[..., ap.skip:, :]
    dtype = x.dtype if x.is_floating_point() else torch.float64  # the fixed-point ops carry int64 Q.F values
    lat = ap.latent.to(dtype)
    q0 = F.linear(lat, a.q.weight.to(dtype), None if a.q.bias is None else a.q.bias.to(dtype))
    q0 = constant(ops, ap.latent_name, q0.expand(*x.shape[:-2], *q0.shape))
    q = _heads(ops.neuron(a.point(N.Role.Q), q0), a.num_heads)
    c = ops.neuron(a.point(N.Role.ATTN_IN), x)
    k = linear_heads(ops, a.k, c, a.point(N.Role.K), a.num_heads)
    v = linear_heads(ops, a.v, c, a.point(N.Role.V), a.num_heads)
    p = ops.neuron(a.point(N.Role.PROBS), ops.unit(Softmax(a.softmax_name), scores(ops, a, q, k)))
    y = ops.linear(a.o, ops.neuron(a.point(N.Role.CTX), merge_heads(context(ops, a, p, v))))
    if ap.mlp is not None:
        h = ops.unit(ap.norm, y) if ap.norm is not None else y
        y = residual(ops, ap.residual_name, y, mlp(ap.mlp, h, ops))
    return y[..., 0, :]


def readout(r: N.Readout, x: torch.Tensor, inputs: Inputs, ops: Ops) -> torch.Tensor:
    """Final norm, pooling (the ops' ``pool`` hook, else :func:`pool`) and projection."""
    if r.norm is not None and not r.norm_after_pool:
        x = ops.unit(r.norm, x)
    y = attention_pool(r.attn_pool, x, ops) if r.attn_pool is not None else getattr(ops, "pool", pool)(r, x, inputs)
    if r.norm is not None and r.norm_after_pool:
        y = ops.unit(r.norm, y)
    return ops.linear(r.proj, ops.neuron(r.point(N.Role.READOUT_IN), y)) if r.proj is not None else y


def stages(graph: N.EncoderGraph, inputs: Inputs, ops: Ops, dtype: torch.dtype = torch.float32,
           x0: torch.Tensor | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Executes the whole tower with ``ops``, yielding (node path, output) after the embedding, after every
    block and after the readout (the last item is the tower's output); ``x0`` is a precomputed :func:`embed`."""
    x0 = embed(graph.embed, inputs, dtype) if x0 is None else x0
    yield graph.embed.path, x0
    mask = attention_mask(graph, inputs, x0.shape[1])
    x = ops.inject(x0)
    for b in graph.blocks:
        x = block(b, x, mask, ops)
        yield b.path, x
    yield graph.readout.path, readout(graph.readout, x, inputs, ops)


def run(graph: N.EncoderGraph, inputs: Inputs, ops: Ops, dtype: torch.dtype = torch.float32,
        x0: torch.Tensor | None = None) -> torch.Tensor:
    """Executes the whole tower with ``ops``; ``x0`` is a precomputed :func:`embed` output."""
    *_, (_, y) = stages(graph, inputs, ops, dtype, x0)
    return y


class DirectUnits:
    """Float units evaluated directly by their kind (float reference and QANN)."""

    def unit(self, node: Any, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return units.kind_of(node).forward(node, x, mask)

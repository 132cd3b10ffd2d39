"""Hugging Face causal language models → :class:`~spikemfm.ir.nodes.EncoderGraph` with logits at every position.

Families (anything else: :class:`~spikemfm.errors.UnsupportedModuleError`):

- ``LlamaForCausalLM`` (SmolLM2, TinyLlama) and ``Qwen2ForCausalLM`` (q / k / v biases): pre-RMSNorm blocks,
  grouped-query causal attention with RoPE (rotate-half, the tables the model's own ``rotary_emb`` makes, so
  its RoPE scaling is kept), SwiGLU MLP, final RMSNorm, tied or untied ``lm_head``;
- ``GPT2LMHeadModel``: learned positions, pre-LayerNorm blocks, fused ``c_attn`` (``Conv1D``, weight stored
  (in, out): transposed here), tanh-GELU MLP, tied head.

A RoPE model has no position table: its ``TokenEmbed.pos`` is a zero table of the context's length, so the
embedding is word[ids] + 0 and the context (the longest sequence) is explicit.
"""
from __future__ import annotations

import torch
from torch import nn

from spikemfm.ir import nodes as N
from spikemfm.ir.mapping import act_name, layernorm, linear, tensor, unsupported
from spikemfm.ir.units.rmsnorm import RMSNorm

CAUSAL_CLASSES = ("LlamaForCausalLM", "Qwen2ForCausalLM", "GPT2LMHeadModel")


def _rms(path: str, m: nn.Module) -> RMSNorm:
    """A Llama / Qwen2 RMSNorm (``weight``, ``variance_epsilon``)."""
    eps = getattr(m, "variance_epsilon", None)
    if eps is None or getattr(m, "weight", None) is None:
        raise unsupported(path, m, "expected an RMSNorm with weight and variance_epsilon")
    return RMSNorm(path, tensor(m.weight), float(eps))


def _rope_tables(model: nn.Module, context: int, head_dim: int) -> N.Rope:
    """The model's own RoPE cos / sin for positions 0 … context−1 (its ``rotary_emb``, scaling included)."""
    rot = model.model.rotary_emb
    probe = torch.zeros(1, context, head_dim, dtype=torch.float32)
    with torch.no_grad():
        cos, sin = rot(probe, torch.arange(context)[None])
    if cos.shape[-1] != head_dim:
        raise unsupported("model.rotary_emb", rot, f"RoPE over {cos.shape[-1]} of {head_dim} head dims (partial "
                          "rotary) is not supported")
    return N.Rope("model.rotary_emb", tensor(sin[0]), tensor(cos[0]), half=True, prefix=0)


def _llama_block(i: int, layer: nn.Module, cfg, rope: N.Rope) -> N.Block:
    path = f"model.layers.{i}"
    a, m = layer.self_attn, layer.mlp
    heads, kv = int(cfg.num_attention_heads), int(cfg.num_key_value_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    if a.q_proj.weight.shape[0] != heads * head_dim or heads % kv:
        raise unsupported(f"{path}.self_attn", a, f"{heads} heads of {head_dim} with {kv} KV heads do not tile "
                          f"q_proj ({a.q_proj.weight.shape[0]} outputs)")
    if abs(float(a.scaling) - head_dim ** -0.5) > 1e-12:
        raise unsupported(f"{path}.self_attn", a, f"attention scaling {a.scaling} is not 1/sqrt(head_dim)")
    attn = N.Attention(f"{path}.self_attn", *(linear(f"{path}.self_attn.{n}", getattr(a, n))
                                             for n in ("q_proj", "k_proj", "v_proj", "o_proj")),
                       heads, True, q_rope=rope, k_rope=rope, num_kv_heads=kv)
    mlp = N.MLP(f"{path}.mlp", linear(f"{path}.mlp.up_proj", m.up_proj), act_name(f"{path}.mlp.act_fn", m.act_fn),
                linear(f"{path}.mlp.down_proj", m.down_proj), gate=linear(f"{path}.mlp.gate_proj", m.gate_proj))
    return N.Block(path, True, _rms(f"{path}.input_layernorm", layer.input_layernorm), attn,
                   _rms(f"{path}.post_attention_layernorm", layer.post_attention_layernorm), mlp)


def _check_llama(model: nn.Module) -> None:
    cfg = model.config
    if getattr(cfg, "use_sliding_window", False) and getattr(cfg, "sliding_window", None):
        raise unsupported("", model, "sliding-window attention is not supported (full causal attention only)")
    types = set(getattr(cfg, "layer_types", None) or ["full_attention"])
    if types != {"full_attention"}:
        raise unsupported("", model, f"layer types {sorted(types)}: only full causal attention is supported")


def from_llama(model: nn.Module, name: str = "llama") -> N.EncoderGraph:
    """``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` → a causal-LM graph (logits (B, N, vocab))."""
    _check_llama(model)
    cfg = model.config
    context = int(cfg.max_position_embeddings)
    heads = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    rope = _rope_tables(model, context, head_dim)
    word = tensor(model.model.embed_tokens.weight)
    embed = N.TokenEmbed("model.embed_tokens", word, torch.zeros(context, word.shape[1]), None, None)
    blocks = tuple(_llama_block(i, layer, cfg, rope) for i, layer in enumerate(model.model.layers))
    head = _head(model, word)
    return N.EncoderGraph(name, "tokens", embed, blocks,
                          N.Readout("lm_head", _rms("model.norm", model.model.norm), "tokens", head))


def _head(model: nn.Module, word: torch.Tensor) -> N.Linear:
    """The LM head; a tied head shares the embedding's tensor (one table in memory)."""
    head = model.lm_head
    if head.weight is model.get_input_embeddings().weight:
        return N.Linear("lm_head", word, None if head.bias is None else tensor(head.bias))
    return linear("lm_head", head)


def _conv1d(path: str, m: nn.Module) -> N.Linear:
    """A GPT-2 ``Conv1D`` (y = x W + b, W stored (in, out)) as a Linear."""
    if type(m).__name__ != "Conv1D":
        raise unsupported(path, m, "expected transformers Conv1D")
    return N.Linear(path, tensor(m.weight).T.contiguous(), tensor(m.bias))


def _gpt2_block(i: int, blk: nn.Module, cfg) -> N.Block:
    path = f"transformer.h.{i}"
    a = blk.attn
    if getattr(a, "scale_attn_by_inverse_layer_idx", False) or not getattr(a, "scale_attn_weights", True) \
            or getattr(a, "is_cross_attention", False):
        raise unsupported(f"{path}.attn", a, "only GPT-2 attention scaled by 1/sqrt(d) (no per-layer scaling, "
                          "no cross-attention) is supported")
    qkv = _conv1d(f"{path}.attn.c_attn", a.c_attn)
    q, k, v = (N.Linear(f"{path}.attn.c_attn[{n}]", w, b)
               for n, w, b in zip("qkv", qkv.weight.chunk(3, 0), qkv.bias.chunk(3, 0)))
    attn = N.Attention(f"{path}.attn", q, k, v, _conv1d(f"{path}.attn.c_proj", a.c_proj),
                       int(cfg.n_head), True)
    mlp = N.MLP(f"{path}.mlp", _conv1d(f"{path}.mlp.c_fc", blk.mlp.c_fc), act_name(f"{path}.mlp.act", blk.mlp.act),
                _conv1d(f"{path}.mlp.c_proj", blk.mlp.c_proj))
    return N.Block(path, True, layernorm(f"{path}.ln_1", blk.ln_1), attn, layernorm(f"{path}.ln_2", blk.ln_2), mlp)


def from_gpt2(model: nn.Module, name: str = "gpt2") -> N.EncoderGraph:
    """``GPT2LMHeadModel`` → a causal-LM graph (logits (B, N, vocab))."""
    t = model.transformer
    word = tensor(t.wte.weight)
    embed = N.TokenEmbed("transformer.wte", word, tensor(t.wpe.weight), None, None)
    blocks = tuple(_gpt2_block(i, blk, model.config) for i, blk in enumerate(t.h))
    return N.EncoderGraph(name, "tokens", embed, blocks,
                          N.Readout("lm_head", layernorm("transformer.ln_f", t.ln_f), "tokens", _head(model, word)))


def from_causal_lm(model: nn.Module, name: str | None = None) -> N.EncoderGraph:
    """Any supported causal LM (see the module docstring)."""
    kind = type(model).__name__
    if kind == "GPT2LMHeadModel":
        return from_gpt2(model, name or "gpt2")
    if kind in ("LlamaForCausalLM", "Qwen2ForCausalLM"):
        return from_llama(model, name or kind.removesuffix("ForCausalLM").lower())
    raise unsupported("", model, f"causal LM class {kind} unsupported (supported: {CAUSAL_CLASSES})")

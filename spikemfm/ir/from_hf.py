"""Hugging Face encoders (BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT, ALBERT) → :class:`~spikemfm.ir.nodes.EncoderGraph`."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from spikemfm.ir import nodes as N
from spikemfm.ir.mapping import act_name, layernorm, linear, tensor, unsupported

BERT_CLASSES = ("BertModel", "RobertaModel", "XLMRobertaModel", "CamembertModel")


@dataclass(frozen=True)
class _Layout:
    """Where a post-LN encoder layer keeps its parts (submodule paths relative to the layer): x ← ln1(x + o(attn)),
    x ← ln2(x + fc2(act(fc1(x)))). ``heads``: the module holding the head count; ``attn`` / ``mlp``: node names."""

    q: str
    k: str
    v: str
    o: str
    ln1: str
    fc1: str
    act: str
    fc2: str
    ln2: str
    heads: str
    attn: str = "attention"
    mlp: str = "ffn"


BERT = _Layout("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
               "attention.output.LayerNorm", "intermediate.dense", "intermediate.intermediate_act_fn", "output.dense",
               "output.LayerNorm", "attention.self", mlp="intermediate")
DISTILBERT = _Layout("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin", "sa_layer_norm",
                     "ffn.lin1", "ffn.activation", "ffn.lin2", "output_layer_norm", "attention")
ALBERT = _Layout("attention.query", "attention.key", "attention.value", "attention.dense", "attention.LayerNorm",
                 "ffn", "activation", "ffn_output", "full_layer_layer_norm", "attention")


def _post_ln_layer(path: str, layer: nn.Module, lay: _Layout, module_path: str | None = None) -> N.Block:
    """A post-LN encoder layer; ``path`` names this use of it (ALBERT runs a shared layer several times),
    ``module_path`` (default ``path``) the module, for errors."""
    where = module_path or path
    holder = layer.get_submodule(lay.heads)
    if getattr(holder, "position_embedding_type", "absolute") != "absolute" or getattr(layer, "is_decoder", False):
        raise unsupported(where, layer, "only absolute-position encoder layers are supported")
    heads = getattr(holder, "num_attention_heads", None) or getattr(holder, "n_heads", None)
    heads = int(heads or getattr(holder.config, "num_attention_heads", None) or holder.config.n_heads)
    lin = {k: linear(f"{path}.{getattr(lay, k)}", layer.get_submodule(getattr(lay, k)))
           for k in ("q", "k", "v", "o", "fc1", "fc2")}
    attn = N.Attention(f"{path}.{lay.attn}", lin["q"], lin["k"], lin["v"], lin["o"], heads, causal=False)
    mlp = N.MLP(f"{path}.{lay.mlp}", lin["fc1"], act_name(f"{path}.{lay.act}", layer.get_submodule(lay.act)),
                lin["fc2"])
    return N.Block(path, False, layernorm(f"{path}.{lay.ln1}", layer.get_submodule(lay.ln1)), attn,
                   layernorm(f"{path}.{lay.ln2}", layer.get_submodule(lay.ln2)), mlp)


def _roberta_pad_id(path: str, bert: nn.Module) -> int | None:
    """RoBERTa-style embeddings number positions from ``padding_idx + 1`` (see :func:`engine.positions`)."""
    e = bert.embeddings
    if not hasattr(e, "create_position_ids_from_input_ids"):
        return None
    pad = getattr(e, "padding_idx", None)
    if pad is None:
        raise unsupported(path, e, "RoBERTa-style embeddings without padding_idx")
    return int(pad)


def _albert_blocks(model: nn.Module) -> tuple[N.Block, ...]:
    """ALBERT's shared layers unrolled in execution order; a layer's first use keeps the module's path (the
    fidelity guard hooks it), later uses are named ``<path>@<i>`` (own neurons and quantizers per use)."""
    enc, cfg = model.encoder, model.config
    per_group = cfg.num_hidden_layers // cfg.num_hidden_groups
    blocks, seen = [], set()
    for i in range(cfg.num_hidden_layers):
        g = i // per_group
        for j, layer in enumerate(enc.albert_layer_groups[g].albert_layers):
            module_path = f"encoder.albert_layer_groups.{g}.albert_layers.{j}"
            path = module_path if module_path not in seen else f"{module_path}@{i}"
            seen.add(module_path)
            blocks.append(_post_ln_layer(path, layer, ALBERT, module_path))
    return tuple(blocks)


HF_CLASSES = BERT_CLASSES + ("ElectraModel", "DistilBertModel", "AlbertModel")


def _embeddings(model: nn.Module, path: str) -> N.TokenEmbed:
    """Word + position (+ token type) tables, LayerNorm, and the projection to the hidden width where the model
    has one (ELECTRA ``embeddings_project``, ALBERT ``encoder.embedding_hidden_mapping_in``)."""
    e = model.embeddings
    types = getattr(e, "token_type_embeddings", None)
    proj = None
    if getattr(model, "embeddings_project", None) is not None:
        proj = linear("embeddings_project", model.embeddings_project)
    elif type(model).__name__ == "AlbertModel":
        proj = linear("encoder.embedding_hidden_mapping_in", model.encoder.embedding_hidden_mapping_in)
    return N.TokenEmbed("embeddings", tensor(e.word_embeddings.weight), tensor(e.position_embeddings.weight),
                        None if types is None else tensor(types.weight),
                        layernorm("embeddings.LayerNorm", e.LayerNorm), _roberta_pad_id(f"{path}embeddings", model),
                        proj)


def from_bert(bert: nn.Module, pool: str = "mean", name: str = "bert", path: str = "") -> N.EncoderGraph:
    """A Hugging Face encoder: ``BertModel``, RoBERTa / XLM-R / ELECTRA (same layer layout; ELECTRA's embedding
    projection kept), ``DistilBertModel`` or ``AlbertModel`` (shared layers unrolled); output = pooled last
    hidden state (``mean`` or ``cls``). Token types (sentence pairs) and RoBERTa position numbering are kept."""
    kind = type(bert).__name__
    if kind not in HF_CLASSES:
        raise unsupported(path.rstrip("."), bert, f"Hugging Face class {kind} unsupported (supported: {HF_CLASSES})")
    if getattr(bert.config, "is_decoder", False):
        raise unsupported(path.rstrip("."), bert, "a decoder (is_decoder=True): only encoders are converted")
    embed = _embeddings(bert, path)
    if kind == "DistilBertModel":
        blocks = tuple(_post_ln_layer(f"transformer.layer.{i}", layer, DISTILBERT)
                       for i, layer in enumerate(bert.transformer.layer))
    elif kind == "AlbertModel":
        blocks = _albert_blocks(bert)
    else:
        blocks = tuple(_post_ln_layer(f"encoder.layer.{i}", layer, BERT) for i, layer in enumerate(bert.encoder.layer))
    return N.EncoderGraph(name, "tokens", embed, blocks, N.Readout("pooler", None, pool, None))

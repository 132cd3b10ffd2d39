"""Hugging Face encoders (BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT, ALBERT) → :class:`~spikemfm.ir.nodes.EncoderGraph`."""
from __future__ import annotations

from torch import nn

from spikemfm.ir import nodes as N
from spikemfm.ir.mapping import act_name, layernorm, linear, tensor, unsupported

BERT_CLASSES = ("BertModel", "RobertaModel", "XLMRobertaModel", "CamembertModel")


def _bert_layer(path: str, layer: nn.Module) -> N.Block:
    sa, so = layer.attention.self, layer.attention.output
    if getattr(sa, "position_embedding_type", "absolute") != "absolute" or getattr(layer, "is_decoder", False):
        raise unsupported(path, layer, "only absolute-position encoder layers are supported")
    heads = int(getattr(sa, "num_attention_heads", None) or sa.config.num_attention_heads)
    attn = N.Attention(f"{path}.attention", linear(f"{path}.attention.self.query", sa.query),
                       linear(f"{path}.attention.self.key", sa.key), linear(f"{path}.attention.self.value", sa.value),
                       linear(f"{path}.attention.output.dense", so.dense), heads, causal=False)
    act = layer.intermediate.intermediate_act_fn
    mlp = N.MLP(f"{path}.intermediate", linear(f"{path}.intermediate.dense", layer.intermediate.dense),
                act_name(f"{path}.intermediate.intermediate_act_fn", act),
                linear(f"{path}.output.dense", layer.output.dense))
    return N.Block(path, False, layernorm(f"{path}.attention.output.LayerNorm", so.LayerNorm), attn,
                   layernorm(f"{path}.output.LayerNorm", layer.output.LayerNorm), mlp)


def _roberta_pad_id(path: str, bert: nn.Module) -> int | None:
    """RoBERTa-style embeddings number positions from ``padding_idx + 1`` (see :func:`engine.positions`)."""
    e = bert.embeddings
    if not hasattr(e, "create_position_ids_from_input_ids"):
        return None
    pad = getattr(e, "padding_idx", None)
    if pad is None:
        raise unsupported(path, e, "RoBERTa-style embeddings without padding_idx")
    return int(pad)


def _distilbert_layer(path: str, layer: nn.Module) -> N.Block:
    a, f = layer.attention, layer.ffn
    heads = int(getattr(a, "n_heads", None) or a.config.n_heads)
    attn = N.Attention(f"{path}.attention", linear(f"{path}.attention.q_lin", a.q_lin),
                       linear(f"{path}.attention.k_lin", a.k_lin), linear(f"{path}.attention.v_lin", a.v_lin),
                       linear(f"{path}.attention.out_lin", a.out_lin), heads, causal=False)
    mlp = N.MLP(f"{path}.ffn", linear(f"{path}.ffn.lin1", f.lin1), act_name(f"{path}.ffn.activation", f.activation),
                linear(f"{path}.ffn.lin2", f.lin2))
    return N.Block(path, False, layernorm(f"{path}.sa_layer_norm", layer.sa_layer_norm), attn,
                   layernorm(f"{path}.output_layer_norm", layer.output_layer_norm), mlp)


def _albert_layer(path: str, module_path: str, layer: nn.Module) -> N.Block:
    """An ALBERT layer; ``path`` names this use of it (shared layers run several times), ``module_path`` the
    module, so parameter names stay those of the checkpoint."""
    a = layer.attention
    heads = int(getattr(a, "num_attention_heads", None) or a.config.num_attention_heads)
    if getattr(a, "position_embedding_type", "absolute") != "absolute":
        raise unsupported(module_path, layer, "only absolute-position ALBERT layers are supported")
    attn = N.Attention(f"{path}.attention", linear(f"{path}.attention.query", a.query),
                       linear(f"{path}.attention.key", a.key), linear(f"{path}.attention.value", a.value),
                       linear(f"{path}.attention.dense", a.dense), heads, causal=False)
    mlp = N.MLP(f"{path}.ffn", linear(f"{path}.ffn", layer.ffn), act_name(f"{path}.activation", layer.activation),
                linear(f"{path}.ffn_output", layer.ffn_output))
    return N.Block(path, False, layernorm(f"{path}.attention.LayerNorm", a.LayerNorm), attn,
                   layernorm(f"{path}.full_layer_layer_norm", layer.full_layer_layer_norm), mlp)


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
            blocks.append(_albert_layer(path, module_path, layer))
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
        blocks = tuple(_distilbert_layer(f"transformer.layer.{i}", layer)
                       for i, layer in enumerate(bert.transformer.layer))
    elif kind == "AlbertModel":
        blocks = _albert_blocks(bert)
    else:
        blocks = tuple(_bert_layer(f"encoder.layer.{i}", layer) for i, layer in enumerate(bert.encoder.layer))
    return N.EncoderGraph(name, "tokens", embed, blocks, N.Readout("pooler", None, pool, None))

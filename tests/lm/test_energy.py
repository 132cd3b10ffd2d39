"""Energy per generated token: the dense work priced for a decoded token is the hand-counted work of one
position with a KV cache, and the spiking side is the pass's own recorded work."""
from __future__ import annotations

import pytest
import torch

from spikemfm.energy.workload import layer_work
from spikemfm.ir.decoder import KVCache
from spikemfm.lm.energy import pass_sim, per_token, token_reports
from spikemfm.snn.decode import chunked_pass, snn_pass

from .conftest import VOCAB


def test_dense_work_of_one_token_is_hand_counted(lm_set, family):
    model, _, snn, calib = lm_set
    prompt = calib[0][:1, :9]
    cache = KVCache()
    chunked_pass(snn, prompt, cache)
    p = snn_pass(snn, torch.tensor([[5]]), cache)
    works = layer_work(pass_sim(snn, p, cache.length))
    cfg = model.config
    d, layers, heads = cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads
    linears = sum(m.weight.numel() for n, m in model.named_modules()
                  if type(m).__name__ in ("Linear", "Conv1D") and n != "lm_head")
    linears += VOCAB * d  # the head (tied or not) is one vocab x hidden product per token
    assert sum(w.dense_macs for w in works if w.kind == "synapse") == linears
    length = prompt.shape[1] + 1  # the new token attends to the 9 cached positions and itself
    gate = 0 if family == "gpt2" else layers * cfg.intermediate_size  # SwiGLU's silu(g) * u, one per channel
    assert sum(w.dense_macs for w in works if w.kind == "spike_product") == \
        2 * layers * heads * length * (d // heads) + gate  # Q.K^T and A.V over all positions


def test_token_reports_price_every_token_and_profile(lm_set):
    _, _, snn, calib = lm_set
    rows = token_reports(snn, calib[0][:1, :6], 2, ["loihi2", "horowitz45"])
    assert len(rows) == 4 and all(r["settled"] for r in rows)
    summary = per_token(rows)
    assert [r["profile"] for r in summary] == ["loihi2", "horowitz45"]
    assert all(r["snn_nJ"] > 0 and r["int8_nJ"] > 0 and r["tokens"] == 2 for r in summary)


def test_system_rows_per_token(lm_set):
    _, _, snn, calib = lm_set
    systems = ((1, 0.0), (8, 0.0), (1, None))
    rows = token_reports(snn, calib[0][:1, :6], 1, ["loihi2"], systems, "tiny")
    snn_rows = [r for r in rows if r["path"] == "snn"]
    dense = [r for r in rows if r["path"] == "dense"]
    assert len(snn_rows) == 1 and len(dense) == 3 and snn_rows[0]["chips"] >= 1
    assert snn_rows[0]["energy_nj"] == pytest.approx(snn_rows[0]["ops_nj"] + snn_rows[0]["static_nj"]
                                                     + snn_rows[0]["interchip_nj"], rel=1e-3)
    nothing, eight, whole = dense
    assert nothing["dram_nj"] > 0 and whole["dram_nj"] == 0  # nothing on chip streams; the whole model fits
    assert eight["dram_nj"] < nothing["dram_nj"]  # a batch shares the weights read from DRAM

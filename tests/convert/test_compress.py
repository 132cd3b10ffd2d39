"""Mixed-precision allocation and structural pruning: exact optimisation, real shrinkage, exact conversion."""
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import spikemfm
from spikemfm.convert import (ConvertConfig, GraphModel, MixedPrecisionConfig, PruneConfig, QuantConfig, distill,
                              prune, quantize)
from spikemfm.snn import convert
from spikemfm.convert.mixed import solve_knapsack
from spikemfm.errors import ConfigError
from spikemfm.ir import OpenClipTextTower, engine
from spikemfm.ir.float_ops import FloatOps
from spikemfm.snn import simulate


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=5), st.integers(0, 10 ** 6), st.floats(2.0, 8.0))
def test_knapsack_matches_brute_force(sizes, seed, avg):
    g = torch.Generator().manual_seed(seed)
    cands = (2, 4, 8)
    dist = [{b: float(torch.rand(1, generator=g)) / b for b in cands} for _ in sizes]
    cap = avg * sum(sizes)
    bits = solve_knapsack(sizes, dist, cap)
    assert sum(s * b for s, b in zip(sizes, bits)) <= cap
    best = min(sum(d[b] for d, b in zip(dist, combo)) for combo in itertools.product(cands, repeat=len(sizes))
               if sum(s * b for s, b in zip(sizes, combo)) <= cap)
    assert sum(d[b] for d, b in zip(dist, bits)) == pytest.approx(best)


def test_bad_compression_configs_fail_clearly():
    with pytest.raises(ConfigError, match="no allocation can meet"):
        MixedPrecisionConfig(budget=1.5)
    with pytest.raises(ConfigError, match="candidates"):
        MixedPrecisionConfig(candidates=(1, 4))
    with pytest.raises(ConfigError, match="no bit allocation meets the budget"):
        solve_knapsack([10, 10], [{2: 1.0, 4: 0.5}] * 2, 30)
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        PruneConfig(head_ratio=1.0)
    with pytest.raises(ConfigError, match="block_ratios"):
        PruneConfig(block_ratios=((0, 0.5, 1.2),))
    with pytest.raises(ConfigError, match="bits must be"):
        QuantConfig(bits=20)


def _vit(seed=0):
    torch.manual_seed(seed)
    return spikemfm.load("timm:vit_tiny_patch16_224", img_size=8, patch_size=4, depth=2, num_heads=4, embed_dim=32,
                         mlp_ratio=2.0, num_classes=6, global_pool="token")


def _calib(n=2):
    g = torch.Generator().manual_seed(5)
    return [torch.randn(16, 3, 8, 8, generator=g) for _ in range(n)]


def test_mixed_precision_meets_budget_and_converts_exactly():
    # outlier_share=0.05: every weight whose top 1/8 channels carry >= 5 % of its error gets an outlier group
    cfg = MixedPrecisionConfig(budget=4.0, candidates=(2, 3, 4, 6, 8), max_calib_batches=2, sensitivity_batches=1,
                               outlier_share=0.05)
    qann = quantize(_vit(), cfg, _calib())
    alloc = qann.allocation
    assert alloc.summary["avg_weight_bits"] <= 4.0 and alloc.summary["avg_act_bits"] <= 4.0
    assert len(set(alloc.bits.values())) > 1  # really mixed
    groups = [k for k in alloc.sensitivity.knobs if k.channels is not None]
    assert groups and {k.group for k in groups} == {"outliers", "rest"}
    for k in alloc.sensitivity.knobs:  # the QANN carries the allocated bits, per layer or per channel group
        b = alloc.bits[k.key]
        if k.kind == "act":
            assert qann.qparams.quants[k.name].bits == b
        elif k.channels is None:
            assert qann.qparams.linears[k.name].bits == b and qann.qparams.linears[k.name].row_bits is None
        else:
            ql = qann.qparams.linears[k.name]
            assert (ql.row_bits[list(k.channels)] == b).all()
            assert ql.w_int[list(k.channels)].abs().max() <= 2 ** (b - 1) - 1
    assert {r["name"] for r in alloc.rows()} == {key[1] for key in alloc.bits}
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        alloc.save(tmp)
        saved = json.load(open(f"{tmp}/bit_report.json"))
        assert saved["summary"]["avg_weight_bits"] <= 4.0 and len(saved["rows"]) == len(alloc.bits)
    x = torch.randn(3, 3, 8, 8)
    res = simulate(convert(qann, ConvertConfig(max_spikes_per_step=1)), x, 160)
    assert res.t_exact(qann(x)) is not None


def _pruned_checks(model, data, x, heads_before, width_before):
    pruned = prune(model, PruneConfig(head_ratio=0.5, mlp_ratio=0.5), data)
    before = GraphModel(engine_graph(model))
    assert pruned.num_params() < before.num_params() and pruned.nbytes() < before.nbytes()
    for blk in pruned.graph.blocks:
        assert blk.attn.num_heads == heads_before // 2
        assert blk.attn.q.weight.shape[0] == blk.attn.o.weight.shape[1] == width_before // 2
        assert blk.mlp.fc1.weight.shape[0] == blk.mlp.fc2.weight.shape[1]
    qann = quantize(pruned, MixedPrecisionConfig(budget=5.0, max_calib_batches=2, sensitivity_batches=1), data)
    res = simulate(convert(qann, ConvertConfig(max_spikes_per_step=4)), x, 80)
    assert res.t_exact(qann(x)) is not None  # the compressed model converts exactly
    return pruned


def engine_graph(model):
    from spikemfm.convert.qann import as_graph

    return as_graph(model)


def test_prune_timm_vit_shrinks_and_converts_exactly():
    _pruned_checks(_vit(), _calib(), torch.randn(2, 3, 8, 8), 4, 32)


def test_prune_open_clip_both_towers():
    torch.manual_seed(0)
    clip = spikemfm.load("open_clip:ViT-B-32", embed_dim=16,
                         vision_cfg=dict(image_size=8, patch_size=4, width=32, layers=2, head_width=8),
                         text_cfg=dict(context_length=10, vocab_size=200, width=32, heads=4, layers=2))
    _pruned_checks(clip.visual, _calib(), torch.randn(2, 3, 8, 8), 4, 32)
    g = torch.Generator().manual_seed(1)
    ids = [torch.randint(1, 199, (8, 10), generator=g) for _ in range(2)]
    for t in ids:
        t[:, 6] = 199  # EOT
    _pruned_checks(OpenClipTextTower(clip), ids, ids[0][:2], 4, 32)


def test_prune_bert_with_padding():
    from spikemfm.models.text import small_bert

    g = torch.Generator().manual_seed(2)
    mask = torch.ones(6, 9, dtype=torch.long)
    mask[1, 5:] = 0
    data = [{"input_ids": torch.randint(0, 1000, (6, 9), generator=g), "attention_mask": mask} for _ in range(2)]
    _pruned_checks(small_bert(hidden=32, heads=4), data, data[0], 4, 32)


def test_distillation_recovers_toward_the_teacher():
    teacher, data = _vit(), _calib(3)
    student = prune(teacher, PruneConfig(head_ratio=0.5, mlp_ratio=0.75), data)
    graph = engine_graph(teacher)

    def gap():
        with torch.no_grad():
            return sum(float(((student(x) - engine.run(graph, engine.as_inputs(graph, x), FloatOps())) ** 2).sum())
                       for x in data)

    before = gap()
    distill(student, teacher, data, steps=60, lr=3e-3)
    assert gap() < 0.7 * before

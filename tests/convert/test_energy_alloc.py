"""Energy-aware bit allocation: hand-priced knobs, the grid knapsack against brute force, and a real model."""
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import spikemfm
from spikemfm.convert import ConvertConfig, MixedPrecisionConfig, quantize
from spikemfm.snn import convert
from spikemfm.convert.energy_alloc import Consumer, knob_energy, layer_weight_bits, spike_counts
from spikemfm.convert.mixed import allocate, solve_costs
from spikemfm.convert.qann import analyze
from spikemfm.convert.sensitivity import Knob, Sensitivity
from spikemfm.hardware.profiles import load_profile
from spikemfm.errors import ConfigError
from spikemfm.quant.params import ActQuant
from spikemfm.snn import simulate


def _toy_sensitivity() -> Sensitivity:
    """One weight (w, 4 parameters) and two activation knobs: ``a`` feeds w (fan-out 3), ``p`` a product (5)."""
    knobs = [Knob("weight", "w", 0, 4), Knob("act", "a", 0, 2), Knob("act", "p", 0, 2)]
    d = {("weight", "w"): {2: 0.5, 4: 0.1}, ("act", "a"): {2: 0.4, 4: 0.1}, ("act", "p"): {2: 0.35, 4: 0.0}}
    spikes = {"a": {2: (1.0, 0.5), 4: (3.0, 1.0)}, "p": {2: (2.0, 1.0), 4: (6.0, 2.0)}}
    cons = {"a": (Consumer("synapse", "w", 3.0),), "p": (Consumer("product", "pv", 5.0),)}
    return Sensitivity((2, 4), knobs, d, {}, {}, {}, spikes, cons)


def test_knob_energy_is_spikes_times_fanout_times_the_profiles_ops():
    sens = _toy_sensitivity()
    graded = knob_energy(sens, load_profile("loihi2"), {"w": 4})  # messages × (fan-out × 12.4 + route 0.85)
    assert graded[("act", "a")] == pytest.approx({2: 0.5 * (3 * 12.4 + 0.85), 4: 1.0 * (3 * 12.4 + 0.85)})
    assert graded[("act", "p")] == pytest.approx({2: 1.0 * (5 * 12.4 + 0.85), 4: 2.0 * (5 * 12.4 + 0.85)})
    unit = knob_energy(sens, load_profile("loihi"), {"w": 4})  # unit spikes × (fan-out × 23.6 + route 1.7)
    assert unit[("act", "a")] == pytest.approx({2: 1.0 * (3 * 23.6 + 1.7), 4: 3.0 * (3 * 23.6 + 1.7)})
    assert unit[("act", "p")] == pytest.approx({2: 2.0 * (5 * 23.6 + 1.7), 4: 6.0 * (5 * 23.6 + 1.7)})


def test_energy_budget_picks_the_best_allocation_that_fits():
    sens = _toy_sensitivity()
    # loihi: a costs 72.5 / 217.5 pJ, p 239.4 / 718.2 pJ at 2 / 4 bits
    def bits(nj):
        alloc = allocate(sens, MixedPrecisionConfig(budget=4.0, candidates=(2, 4), energy_budget_nj=nj,
                                                    energy_profile="loihi"))
        return alloc.bits[("act", "a")], alloc.bits[("act", "p")], alloc.summary
    assert bits(1.0)[:2] == (4, 4)
    assert bits(0.8)[:2] == (2, 4)  # 790.7 pJ, D 0.4 + 0; (4, 2) also fits (456.9 pJ) but D 0.1 + 0.35
    a, p, summary = bits(0.5)  # (2, 4) no longer fits; (4, 2) beats (2, 2)
    assert (a, p) == (4, 2) and summary["predicted_spike_energy_nj"] == pytest.approx((217.5 + 239.4) / 1e3)
    assert summary["spike_energy_at_lowest_nj"] == pytest.approx((72.5 + 239.4) / 1e3)
    assert summary["spike_energy_at_highest_nj"] == pytest.approx((217.5 + 718.2) / 1e3)
    with pytest.raises(ConfigError, match="no allocation fits.*2 bits everywhere.*0.3119 nJ"):
        bits(0.3)


def test_energy_config_is_checked():
    with pytest.raises(ConfigError, match="not both"):
        MixedPrecisionConfig(act_budget=4.0, energy_budget_nj=1.0)
    with pytest.raises(ConfigError, match="energy_budget_nj=-1"):
        MixedPrecisionConfig(energy_budget_nj=-1.0)
    with pytest.raises(ConfigError, match="MixedPrecisionConfig.energy_profile"):
        MixedPrecisionConfig(energy_budget_nj=1.0, energy_profile="no_such_chip")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(0, 10 ** 6), st.floats(0.1, 1.0))
def test_grid_knapsack_is_feasible_and_near_optimal(n, seed, frac):
    g = torch.Generator().manual_seed(seed)
    cands = (2, 4, 8)
    costs = [{b: float(torch.rand(1, generator=g)) * b for b in cands} for _ in range(n)]
    dist = [{b: float(torch.rand(1, generator=g)) / b for b in cands} for _ in range(n)]
    cap = frac * sum(max(c.values()) for c in costs)
    bits = solve_costs(costs, dist, cap)
    combos = [c for c in itertools.product(cands, repeat=n) if sum(ci[b] for ci, b in zip(costs, c)) <= cap]
    if bits is None:  # only when nothing fits even with the grid's slack
        assert not [c for c in combos if sum(ci[b] for ci, b in zip(costs, c)) <= cap * (1 - n / 20_000)]
        return
    assert sum(ci[b] for ci, b in zip(costs, bits)) <= cap
    # optimal among the allocations that fit with one grid cell of slack per knob
    slack = [c for c in combos if sum(ci[b] for ci, b in zip(costs, c)) <= cap * (1 - n / 20_000)]
    if slack:
        assert sum(d[b] for d, b in zip(dist, bits)) <= min(sum(d[b] for d, b in zip(dist, c)) for c in slack) + 1e-12


def test_spike_counts_are_levels_per_input():
    q = ActQuant("x", 0.5, -3, 3, 3)
    values = torch.tensor([0.1, -0.3, 0.8, 2.0, -5.0, 0.0], dtype=torch.float64)  # levels 0, -1, 2, 3, -3, 0
    assert spike_counts(q, values, 12) == pytest.approx((12 * 9 / 6, 12 * 4 / 6))


def _vit():
    torch.manual_seed(0)
    return spikemfm.load("timm:vit_tiny_patch16_224", img_size=8, patch_size=4, depth=2, num_heads=4, embed_dim=32,
                         mlp_ratio=2.0, num_classes=6, global_pool="token")


def test_energy_aware_allocation_beats_the_bit_budget_at_its_energy_and_converts_exactly():
    g = torch.Generator().manual_seed(5)
    calib = [torch.randn(16, 3, 8, 8, generator=g) for _ in range(2)]
    base = dict(candidates=(2, 3, 4, 6, 8), max_calib_batches=2, sensitivity_batches=1)
    model = _vit()
    an = analyze(model, MixedPrecisionConfig(**base), calib)
    by_bits = allocate(an.sensitivity, MixedPrecisionConfig(budget=4.0, **base))
    weights = {k: b for k, b in by_bits.bits.items() if k[0] == "weight"}
    energy = knob_energy(an.sensitivity, load_profile("horowitz45"), layer_weight_bits(weights))
    spent = sum(energy[k][b] for k, b in by_bits.bits.items() if k[0] == "act") / 1e3
    n = sum(k.kind == "act" for k in an.sensitivity.knobs)
    cfg = MixedPrecisionConfig(budget=4.0, energy_budget_nj=spent * (1 + 2 * n / 20_000),
                               energy_profile="horowitz45", **base)
    qann = quantize(model, cfg, analysis=an)
    alloc = qann.allocation
    assert alloc.summary["predicted_spike_energy_nj"] <= cfg.energy_budget_nj
    act_d = lambda a: sum(an.sensitivity.knob_d[k][b] for k, b in a.bits.items() if k[0] == "act")  # noqa: E731
    assert act_d(alloc) <= act_d(by_bits) + 1e-12
    for k in an.sensitivity.knobs:
        if k.kind == "act":
            assert qann.qparams.quants[k.name].bits == alloc.bits[k.key]
    x = torch.randn(3, 3, 8, 8, generator=g)
    res = simulate(convert(qann, ConvertConfig(max_spikes_per_step=None)), x, 16)  # graded
    assert res.t_exact(qann(x)) is not None

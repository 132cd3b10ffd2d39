"""Energy model: hand-counted operations, NeuroBench cross-check, profiles and reports."""
import math

import pytest
import torch
from torch import nn

import spikemfm
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.quant.params import QParams
from spikemfm.quant.params import ActQuant, QLinear
from spikemfm.energy import available_profiles, estimate_energy, load_profile
from spikemfm.hardware import costs as C
from spikemfm.energy.workload import layer_work
from spikemfm.errors import ConfigError
from spikemfm.ir import nodes as N
from spikemfm.ir.netlist import Netlist, SynapticLayer
from spikemfm.snn import simulate
from spikemfm.snn.ops import SNNStepOps
from spikemfm.snn.record import Recorder

W = torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]], dtype=torch.float64)  # out=2, in=3; column 1 all zero
COUNTS = [[1, 0, 0], [1, 1, -1], [2, 1, -1]]  # running spike counts of the 3 inputs over 3 steps


def _one_linear_run(w_bits=4):
    lin = N.Linear("fc", W.float(), None)
    qp = QParams(quants={"in": ActQuant("in", 1.0, -7, 7, 4)},
                 linears={"fc": QLinear("fc", W, torch.ones(2, dtype=torch.float64),
                                        torch.ones(2, dtype=torch.float64), None, w_bits)})
    rec = Recorder(batch_size=1, timesteps=3)
    net = Netlist("one-linear", (SynapticLayer("fc", ("in",), (2,), 3, 2),), "fc", 1, {})  # "in" drives fc
    ops = SNNStepOps(qp, net, max_spikes=None, recorder=rec)
    outs = []
    for c in COUNTS:
        ops.next_step()
        count = ops.neuron("in", torch.tensor([c], dtype=torch.float64))  # step 1: graded count = level = c
        outs.append(ops.linear(lin, count))
    return rec, outs


def test_hand_counted_linear_layer():
    rec, outs = _one_linear_run()
    neurons, synapses, _ = rec.finish()
    # increments: [1,0,0], [0,1,-1], [1,0,0] -> unit spikes 1, 2, 1
    assert neurons["in"].spikes.tolist() == [1, 2, 1]
    st = synapses["fc"]
    assert st.ops.tolist() == [2, 4, 2]  # spikes x fan-out (2 outputs)
    # non-zero weights fed by each input: [1, 0, 2] -> 1*1; 1*0 + 1*2; 1*1
    assert st.effective_ops.tolist() == [1, 2, 1]
    # accumulated current equals W @ count at every step
    for c, out in zip(COUNTS, outs):
        assert torch.equal(out[0], W @ torch.tensor(c, dtype=torch.float64))


def test_counts_equal_neurobench_synaptic_operations():
    """Per step, NeuroBench's single_layer_MACs (the core of SynapticOperations) on the same inputs."""
    from neurobench.metrics.utils.layers import single_layer_MACs

    torch.manual_seed(0)
    model = spikemfm.load("timm:vit_tiny_patch16_224", img_size=8, patch_size=4, depth=1, embed_dim=16,
                          num_heads=2, num_classes=4)
    qann = quantize(model, QuantConfig(bits=4), [torch.randn(8, 3, 8, 8)])
    seen: dict[str, list[torch.Tensor]] = {}
    orig = SNNStepOps._synapse  # every synaptic layer's input, fused with its neuron or not

    def spy(self, node, c):
        if self.inputs.get(node.path) is not c:
            seen.setdefault(node.path, []).append(self.fired[self.pre[node.path]].step.delta.clone())
        return orig(self, node, c)

    SNNStepOps._synapse = spy
    try:
        res = simulate(convert(qann, ConvertConfig(max_spikes_per_step=1)), torch.randn(2, 3, 8, 8), 12)
    finally:
        SNNStepOps._synapse = orig
    work = {w.name: w for w in layer_work(res)}
    checked = 0
    for path, deltas in seen.items():
        w_int = qann.qparams.linears[path].w_int
        layer = nn.Linear(w_int.shape[1], w_int.shape[0], bias=False)
        layer.weight.data = w_int.float()
        nb_eff = nb_dense = 0
        for d in deltas:
            x = d.float().reshape(-1, d.shape[-1])
            ops, spiking = single_layer_MACs(x, layer)
            assert spiking  # binary signed spikes: NeuroBench counts them as ACs
            nb_eff += ops
            nb_dense += single_layer_MACs(x, layer, total=True)[0]
        st = res.synapse_stats[path]
        assert nb_eff == int(st.effective_event_ops.sum()) == int(st.effective_ops.sum())
        assert nb_dense / len(deltas) == work[path].dense_macs * res.batch_size
        checked += 1
    assert checked == len(qann.qparams.linears)  # q, k, v, o, fc1, fc2, head


def _tiny_sim(max_spikes=1, steps=6):
    torch.manual_seed(1)
    # 4x4 image, one 4x4 patch + cls = 2 tokens, width 2, 1 head, MLP hidden 4
    model = spikemfm.load("timm:vit_tiny_patch16_224", img_size=4, patch_size=4, depth=1, embed_dim=2,
                          num_heads=1, mlp_ratio=2.0, num_classes=3)
    qann = quantize(model, QuantConfig(bits=4), [torch.randn(16, 3, 4, 4)])
    return simulate(convert(qann, ConvertConfig(max_spikes_per_step=max_spikes)), torch.randn(3, 3, 4, 4), steps)


def test_hand_counted_attention_block():
    work = {w.name: w for w in layer_work(_tiny_sim())}
    n, d, hidden = 2, 2, 4
    assert work["patch_embed"].dense_macs == 1 * (3 * 4 * 4) * d
    for name in ("blocks.0.attn.qkv[q]", "blocks.0.attn.qkv[k]", "blocks.0.attn.qkv[v]", "blocks.0.attn.proj"):
        assert work[name].dense_macs == n * d * d and work[name].weights == d * d
    assert work["blocks.0.attn.qk"].dense_macs == 1 * n * n * d
    assert work["blocks.0.attn.av"].dense_macs == 1 * n * n * d
    assert work["blocks.0.attn.softmax"].dense_elements == 1 * n * n
    assert work["blocks.0.mlp.fc1"].dense_macs == n * d * hidden
    assert work["blocks.0.mlp.fc2"].dense_macs == n * hidden * d
    assert work["head"].dense_macs == 1 * d * 3  # cls token only
    assert work["blocks.0.attn.probs"].neurons == n * n and work["blocks.0.mlp.hidden"].neurons == n * hidden
    # synaptic ops never exceed spikes x fan-out
    w = work["blocks.0.mlp.fc1"]
    assert w.sops <= w.in_spikes * hidden + 1e-9


def test_horowitz_primitive_costs_by_hand():
    p = load_profile("horowitz45")
    assert math.isclose(C.synop(p, 4)[0], 0.1 + 4 / 64 * 100 + 64 / 64 * 10)
    assert math.isclose(C.mac(p, 32)[0], 3.7 + 0.9)
    assert math.isclose(C.mac(p, 8)[0], 0.2 + 0.1)
    assert math.isclose(C.mac(p, 4)[0], 0.2 * 0.25 + 0.1)
    assert math.isclose(C.neuron_update(p, True)[0], 2 * 0.1 + 10)


def test_standard_formula_reproduced():
    sim = _tiny_sim()
    rep = estimate_energy(sim, "standard_formula")
    work = layer_work(sim)
    enc = sum(w.dense_macs for w in work if w.kind == "encoding")
    sops = sum(w.sops for w in work if w.kind in ("synapse", "spike_product"))
    macs = sum(w.dense_macs for w in work)
    assert math.isclose(rep.snn_total, 4.6 * enc + 0.9 * sops)
    assert math.isclose(rep.dense_total["fp32"], 4.6 * macs)
    assert rep.complete


def test_a_profile_lacking_a_term_says_incomplete_not_zero(tmp_path):
    src = load_profile("loihi").path
    text = open(src).read()
    cut = text.index("[terms.int_op]")
    lacking = tmp_path / "loihi_no_int_op.toml"
    lacking.write_text(text[:cut])
    rep = estimate_energy(_tiny_sim(), lacking)
    assert not rep.complete and rep.snn_missing == ["int_op"]
    assert rep.ratio("int8") is None and rep.snn_total > 0
    assert "incomplete" in str(rep.summary()["snn_nJ"])
    unpriced = [r for r in rep.rows if r.snn_pj is None]
    assert unpriced and all(r.missing == ("int_op",) for r in unpriced)  # per layer, named, never 0
    assert {r.kind for r in unpriced} == {"layernorm", "softmax", "lut"}
    assert {r["layer"] for r in rep.layer_rows() if r["snn_pJ"] is None} == {r.layer for r in unpriced}


@pytest.mark.parametrize("name", ["loihi", "loihi2", "truenorth", "spinnaker2"])
def test_neuromorphic_totals_are_complete_with_dense_baselines_on_the_reference(name):
    sim = _tiny_sim()
    rep, ref = estimate_energy(sim, name), estimate_energy(sim, "eyeriss_int8")
    assert rep.complete and rep.ratio("int8") > 0
    assert rep.dense_total == ref.dense_total and rep.summary()["dense_profile"] == "eyeriss_int8"
    enc = [r for r in rep.rows if r.kind == "encoding"]  # the analog input layer runs on the dense path
    assert enc and all(r.snn_pj == ref.rows[rep.rows.index(r)].dense_pj["fp32"] for r in enc)


def test_horowitz_report_is_complete_with_break_even():
    rep = estimate_energy(_tiny_sim(), "horowitz45")
    assert rep.complete and rep.baselines["qann_bitmatched"] == math.ceil(math.log2(6 + 1))
    assert rep.ratio("fp32") > 0
    assert math.isclose(sum(r.snn_pj for r in rep.rows), rep.snn_total)  # the layer rows sum to the totals
    for b in rep.baselines:
        assert math.isclose(sum(r.dense_pj[b] for r in rep.rows), rep.dense_total[b])
    synapses = [r for r in rep.rows if r.kind == "synapse"]
    assert synapses and all(r.spike_rate is not None and r.break_even_rate >= 0 for r in synapses)
    for b, r in rep.break_even_rate.items():
        assert r is not None and r >= 0.0


def test_every_shipped_profile_loads():
    assert {"horowitz45", "loihi", "loihi2", "spinnaker2", "truenorth", "eyeriss_int8",
            "standard_formula"} <= set(available_profiles())
    for name in available_profiles():
        p = load_profile(name)
        assert all(t.evidence in ("measured", "simulated", "derived", "assumed") for t in p.terms.values())
    assert load_profile("truenorth").scope == "all-in"


def test_bad_profile_names_file_and_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[profile]\nname="x"\nscope="per-term"\n[terms.int8_add]\nvalue=0.03\nunit="pJ"\n'
                   'source="s"\nevidence="guessed"\nscope="per-term"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: \[terms\.int8_add\]\.evidence='guessed'"):
        load_profile(bad)
    with pytest.raises(ConfigError, match="unknown energy profile"):
        load_profile("loihi9")
    null = tmp_path / "null.toml"
    null.write_text('[profile]\nname="n"\nscope="per-term"\n[terms.int32_add]\nvalue="null"\nunit="pJ"\n'
                    'source="s"\nevidence="assumed"\nscope="per-term"\n')
    assert load_profile(null).pj("int32_add") is None


COUNTS_GRADED = [[3, 0, 0], [3, 2, -1], [5, 2, -1]]  # increments [3,0,0], [0,2,-1], [2,0,0]


def test_graded_messages_and_unit_spikes_counted_by_hand():
    lin = N.Linear("fc", W.float(), None)
    qp = QParams(quants={"in": ActQuant("in", 1.0, -7, 7, 4)},
                 linears={"fc": QLinear("fc", W, torch.ones(2, dtype=torch.float64),
                                        torch.ones(2, dtype=torch.float64), None, 4)})
    rec = Recorder(batch_size=1, timesteps=3)
    net = Netlist("one-linear", (SynapticLayer("fc", ("in",), (2,), 3, 2),), "fc", 1, {})
    ops = SNNStepOps(qp, net, max_spikes=None, recorder=rec)
    for c in COUNTS_GRADED:
        ops.next_step()
        ops.linear(lin, ops.neuron("in", torch.tensor([c], dtype=torch.float64)))
    neurons, synapses, _ = rec.finish()
    assert neurons["in"].spikes.tolist() == [3, 3, 2]  # unit spikes: |increments| summed
    assert neurons["in"].events.tolist() == [1, 2, 1]  # messages: firing neurons
    st = synapses["fc"]
    assert st.ops.tolist() == [6, 6, 4] and st.event_ops.tolist() == [2, 4, 2]  # x fan-out 2
    # non-zero weights per input column [1, 0, 2]: 3*1; 2*0 + 1*2; 2*1 and, per message, 1; 0 + 2; 1
    assert st.effective_ops.tolist() == [3, 2, 2] and st.effective_event_ops.tolist() == [1, 2, 1]


def test_graded_profiles_price_messages_unit_profiles_price_spikes():
    from spikemfm.energy.model import _snn
    from spikemfm.energy.workload import LayerWork

    syn = LayerWork("fc", "synapse", "", sops=7, event_sops=4, w_bits=4)
    neu = LayerWork("in", "neuron", "", spikes=8, messages=4, neuron_steps=9, active_neuron_steps=4)
    unit, graded = load_profile("loihi"), load_profile("loihi2")
    assert graded.messages == "graded" and unit.messages == "unit"
    assert math.isclose(_snn(unit, syn, unit)[0].value, 7 * 23.6)
    assert math.isclose(_snn(graded, syn, graded)[0].value, 4 * 12.4)
    assert math.isclose(_snn(unit, neu, unit)[0].value, 4 * 81 + 5 * 52 + 8 * 1.7)
    assert math.isclose(_snn(graded, neu, graded)[0].value, 4 * 40.5 + 5 * 26 + 4 * 0.85)
    # the rate-dependent part: synaptic ops and routing only
    assert math.isclose(_snn(graded, neu, graded)[1].value, 4 * 0.85)


def test_binary_spikes_are_one_message_each():
    for w in layer_work(_tiny_sim(max_spikes=1)):
        assert w.event_sops == w.sops and w.messages == w.spikes
    graded = [w for w in layer_work(_tiny_sim(max_spikes=None)) if w.kind == "synapse"]
    assert any(w.event_sops < w.sops for w in graded)  # payloads > 1 are one message


def test_fixed_point_units_priced_as_integer_work_by_hand():
    from spikemfm.ir import units

    loihi, h45 = load_profile("loihi"), load_profile("horowitz45")
    assert math.isclose(C.float_element(loihi, units.get("softmax"))[0], 12 * 16.2)
    assert math.isclose(C.float_element(loihi, units.get("layernorm"), 64)[0], (7 + 34 / 64) * 16.2)
    assert math.isclose(C.float_element(loihi, units.get("rope"))[0], 4 * 16.2)
    assert math.isclose(C.lookup(loihi, 8)[0], 2 * 16.2)
    assert math.isclose(C.float_element(h45, units.get("softmax"))[0], 5 * 3.7 + 5 * 0.9 + 64 / 64 * 20)  # fp32 off-chip
    rep = estimate_energy(_tiny_sim(), "loihi2")
    work = {w.name: w for w in layer_work(_tiny_sim())}
    row = next(r for r in rep.rows if r.kind == "softmax")
    assert math.isclose(row.snn_pj, work[row.layer].float_evals * 12 * 8.1)


def test_a_graded_profile_needs_its_message_cost(tmp_path):
    bad = tmp_path / "g.toml"
    bad.write_text('[profile]\nname = "g"\nscope = "per-term"\nmessages = "graded"\n')
    with pytest.raises(ConfigError, match="graded_synop"):
        load_profile(bad)
    bad.write_text('[profile]\nname = "g"\nscope = "per-term"\nmessages = "bursty"\n')
    with pytest.raises(ConfigError, match="messages='bursty'"):
        load_profile(bad)


def test_dense_energy_at_any_width_matches_the_baselines():
    from spikemfm.energy import dense_energy

    sim = _tiny_sim()
    for profile in ("horowitz45", "loihi"):
        rep = estimate_energy(sim, profile)
        assert dense_energy(sim, profile, 8) == (rep.dense_total["int8"], [])
        assert dense_energy(sim, profile, 32) == (rep.dense_total["fp32"], [])
        assert dense_energy(sim, profile, 3)[0] == rep.dense_total["qann_bitmatched"]  # T=6: 3 bits

"""Per-profile neuron-update policy: every neuron every step (Loihi, SpiNNaker) or only the neurons whose input
changed or that fire (event-driven designs) — hand-worked counts, hand-counted energy, profile inheritance."""
import pytest
import torch

import spikemfm
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.energy import counts_updates, estimate_energy, load_profile
from spikemfm.errors import ConfigError
from spikemfm.ir.netlist import Netlist
from spikemfm.quant.params import ActQuant, QParams
from spikemfm.snn import simulate
from spikemfm.snn.ops import SNNStepOps
from spikemfm.snn.record import Recorder


def test_hand_worked_updates_of_binary_neurons():
    """θ = 1, one spike per step at most. Inputs per step: [3,0,0], [3,.2,0], [3,.2,.4], [3,.2,.4].
    Neuron 0 climbs to 3 one spike per step (fires at steps 1-3 on an input that changed only at step 1);
    neuron 1's input changes at step 2 and neuron 2's at step 3, but both round to level 0 and never fire.
    Updated (input changed or fired): {0}, {0,1}, {0,2}, {} -> 1, 2, 2, 0; firing: 1, 1, 1, 0."""
    qp = QParams(quants={"in": ActQuant("in", 1.0, -7, 7, 4)}, linears={})
    rec = Recorder(batch_size=1, timesteps=4)
    rec.track_updates()
    ops = SNNStepOps(qp, Netlist("one-layer", (), "in", 1, {}), max_spikes=1, recorder=rec)
    for x in ([3, 0, 0], [3, .2, 0], [3, .2, .4], [3, .2, .4]):
        ops.next_step()
        ops.neuron("in", torch.tensor([x], dtype=torch.float64))
    st = rec.finish()[0]["in"]
    assert st.updates.tolist() == [1, 2, 2, 0]
    assert st.events.tolist() == [1, 1, 1, 0]


def _sim(count_updates=True, max_spikes=2):
    torch.manual_seed(0)
    clip = spikemfm.load("open_clip:ViT-B-32", embed_dim=16,
                         vision_cfg=dict(image_size=8, patch_size=4, width=32, layers=2, head_width=16),
                         text_cfg=dict(context_length=10, vocab_size=200, width=32, heads=2, layers=2))
    x = torch.randn(3, 3, 8, 8)
    snn = convert(quantize(clip.visual, QuantConfig(bits=4), [x]), ConvertConfig(max_spikes_per_step=max_spikes))
    return simulate(snn, x, 10, count_updates=count_updates)


SIM = _sim()


def _on_input(tmp_path, base: str):
    f = tmp_path / f"{base}_event.toml"
    f.write_text(f'[profile]\nbase = "{base}"\nname = "{base}_event"\nneuron_updates = "on_input"\n')
    return load_profile(f)


def _idle_steps(sim) -> float:
    """Neuron-steps an event-driven chip skips: neither input changed nor fired (per input)."""
    return sum(s.neurons * sim.timesteps - float(s.updates.sum()) / sim.batch_size
               for s in sim.neuron_stats.values())


@pytest.mark.parametrize("base, idle_pj", [("loihi2", 26.0), ("horowitz45", 2 * 0.1 + 64 / 64 * 10.0)])
def test_on_input_saves_exactly_the_idle_updates(tmp_path, base, idle_pj):
    """Same run, same terms: the event-driven variant costs less by (inactive update) × (skipped neuron-steps);
    loihi2's inactive update is 26 pJ; horowitz45's update is two int32 adds (0.1 pJ each) plus reading and
    writing a 32-bit membrane in an 8 KB SRAM (10 pJ per 64 bits)."""
    every, event = estimate_energy(SIM, base), estimate_energy(SIM, _on_input(tmp_path, base))
    skipped = _idle_steps(SIM)
    assert skipped > 0
    assert every.snn_total - event.snn_total == pytest.approx(idle_pj * skipped, rel=1e-9)
    assert event.dense_total == every.dense_total  # the dense baselines do not change
    assert event.summary()["neuron_updates"] == "on_input" and every.summary()["neuron_updates"] == "every_step"


def test_shipped_event_driven_profile_is_horowitz45_with_updates_on_input():
    p, base = load_profile("horowitz45_event"), load_profile("horowitz45")
    assert p.neuron_updates == "on_input" and base.neuron_updates == "every_step"
    assert {k: v.value for k, v in p.terms.items()} == {k: v.value for k, v in base.terms.items()}
    assert counts_updates(["loihi2", p]) and not counts_updates(["loihi2", "horowitz45"])


def test_on_input_profile_needs_a_run_that_counted_updates():
    with pytest.raises(ConfigError, match="count_updates=True"):
        estimate_energy(_sim(count_updates=False), "horowitz45_event")


def test_a_variant_overrides_terms_of_its_base(tmp_path):
    f = tmp_path / "cheap.toml"
    f.write_text('[profile]\nbase = "loihi2"\nname = "cheap"\n[terms.synop]\nvalue = 1.0\nunit = "pJ"\n'
                 'source = "what-if"\nevidence = "assumed"\nscope = "per-term"\n')
    p, base = load_profile(f), load_profile("loihi2")
    assert p.pj("synop") == 1.0 and p.pj("graded_synop") == base.pj("graded_synop")
    assert p.messages == "graded" and p.dense_reference == base.dense_reference and p.name == "cheap"


@pytest.mark.parametrize("text, match", [
    ('[profile]\nbase = "loihi2"\nname = "x"\nneuron_updates = "sometimes"\n', "neuron_updates"),
    ('[profile]\nbase = "no_such_profile"\nname = "x"\n', "unknown energy profile"),
    ('[profile]\nbase = "self.toml"\nname = "x"\nscope = "per-term"\n', "cycle"),
    ('[profile]\nbase = 3\nname = "x"\n', "base"),
])
def test_bad_variants_are_one_clear_error(tmp_path, text, match):
    f = tmp_path / "self.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_profile(f)

"""Streaming simulation on real video: state kept across frames, exact at every settled frame."""
import pytest
import torch

from spikemfm.app import input_spec
from spikemfm.app.streaming import video_inputs
from spikemfm.app.tiny_clip import calibration_images
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.data import video_frames
from spikemfm.energy import dense_energy, estimate_energy
from spikemfm.energy.delta import INPUT, _share, delta_shares, dense_delta_energy
from spikemfm.errors import ConfigError
from spikemfm.ir.netlist import build_netlist
from spikemfm.snn import simulate, simulate_stream


@pytest.fixture(scope="module")
def qann4(tiny_clip):
    return quantize(tiny_clip.visual, QuantConfig(bits=4), calibration_images(128))


@pytest.fixture(scope="module")
def vtest(tiny_clip, qann4):
    frames, notes = video_inputs("vtest", input_spec(tiny_clip.visual, qann4.graph), 6)
    assert any("normalised" in n for n in notes)
    return frames  # (F, B=1, 1, 28, 28): real frames, normalised like Fashion-MNIST


def test_video_inputs_put_stretches_of_the_video_side_by_side(tiny_clip, qann4):
    spec = input_spec(tiny_clip.visual, qann4.graph)
    two, _ = video_inputs("vtest", spec, 3, batch=2)
    one, _ = video_inputs("vtest", spec, 6)
    assert two.shape == (3, 2, 1, 28, 28)
    assert torch.equal(two[:, 0], one[:3, 0]) and torch.equal(two[:, 1], one[3:, 0])
    raw = video_frames("vtest", 28, max_frames=1)
    assert torch.allclose(one[0, 0], (raw[0] - spec.mean[0]) / spec.std[0])


def _rel_errors(stream, qann, frames):
    with torch.no_grad():
        ref = torch.stack([qann(f) for f in frames])
    scale = ref.abs().max()
    return ((stream.outputs - ref).abs().reshape(len(frames), -1).amax(1) / scale).tolist()


@pytest.mark.parametrize("spikes", [None, 4, 1])
def test_settled_frames_equal_the_qann_on_each_real_frame(qann4, vtest, spikes):
    snn = convert(qann4, ConvertConfig(max_spikes_per_step=spikes))
    stream = simulate_stream(snn, vtest, "settle", max_steps=64)
    assert stream.settled.all()
    assert max(_rel_errors(stream, qann4, vtest)) == 0.0  # bit for bit, frame by frame
    # a fixed budget at least as long as every settling frame is exact too
    fixed = simulate_stream(snn, vtest, int(stream.steps_used.max()), max_steps=64)
    assert max(_rel_errors(fixed, qann4, vtest)) == 0.0 and fixed.settled.all()


def test_only_changes_spike_after_the_first_frame(qann4, vtest):
    stream = simulate_stream(convert(qann4, ConvertConfig(max_spikes_per_step=1)), vtest, "settle")
    spikes = stream.frame_spikes
    assert float(spikes[1:].mean()) < 0.5 * float(spikes[0])  # vtest: a static camera
    # the frames partition the run: their statistics add up to the whole stream's
    assert float(spikes.sum()) == stream.run.total_spikes()
    assert sum(stream.frame(f).total_spikes() for f in range(stream.frames)) == stream.run.total_spikes()
    assert float(stream.frame_messages.sum()) == sum(float(s.events.sum()) for s in stream.run.neuron_stats.values())


def test_a_repeated_frame_costs_one_quiet_step_and_no_spike(qann4, vtest):
    frames = vtest[:1].repeat(3, 1, 1, 1, 1)
    stream = simulate_stream(convert(qann4, ConvertConfig(max_spikes_per_step=None)), frames, "settle")
    assert stream.steps_used[1:].tolist() == [1, 1] and stream.frame_spikes[1:].tolist() == [0.0, 0.0]
    assert torch.equal(stream.outputs[1], stream.outputs[0])
    # and the dense delta baseline skips the whole repeated frame
    shares = delta_shares(qann4, frames)
    assert all(v == 0.0 for v in shares[1].values())
    assert dense_delta_energy(stream.frame(1), "eyeriss_int8", 8, shares[1])[0] == 0.0
    assert dense_delta_energy(stream.frame(0), "eyeriss_int8", 8, shares[0]) == dense_energy(stream.frame(0),
                                                                                             "eyeriss_int8", 8)


def test_first_frame_is_a_plain_simulation(qann4, vtest):
    snn = convert(qann4, ConvertConfig(max_spikes_per_step=2))
    stream = simulate_stream(snn, vtest[:2], 3)
    plain = simulate(snn, vtest[0], 3)
    assert torch.equal(stream.frame(0).outputs, plain.outputs)
    assert stream.frame(0).total_spikes() == plain.total_spikes()
    assert estimate_energy(stream.frame(0), "loihi2").snn_total == pytest.approx(
        estimate_energy(plain, "loihi2").snn_total)


def test_delta_shares_of_attention_follow_their_operands(qann4):
    net = build_netlist(qann4.graph)
    sim = simulate(convert(qann4, ConvertConfig(max_spikes_per_step=None)), torch.zeros(1, 1, 28, 28), 1)
    from spikemfm.energy.workload import layer_work

    works = {w.name: w for w in layer_work(sim)}
    shares = {p.name: 0.0 for p in net.neurons()}
    shares.update({INPUT: 0.0, "blocks.0.attn.q": 0.5, "blocks.0.attn.probs": 0.25, "blocks.0.attn.v": 0.5})
    scores = [w for w in works.values() if w.kind == "spike_product"]
    assert _share(scores[0], net, shares) == 0.5  # queries changed, keys did not: 1 - (1 - 0.5)(1 - 0)
    assert _share(scores[1], net, shares) == 0.75  # context: ΔA·V + A'·ΔV
    soft = [w for w in works.values() if w.kind == "softmax"][0]
    assert _share(soft, net, shares) == 0.5
    shares["blocks.0.attn.k"] = 0.25
    assert _share(scores[0], net, shares) == pytest.approx(1 - 0.5 * 0.75) and _share(soft, net, shares) == 1.0


def test_bad_stream_arguments_fail_clearly(qann4, vtest):
    snn = convert(qann4, ConvertConfig(max_spikes_per_step=None))
    for kwargs, msg in (({"steps_per_frame": 0}, "steps_per_frame=0"), ({"steps_per_frame": "fast"}, "'settle'"),
                        ({"max_steps": 0}, "max_steps=0"), ({"steps_per_frame": 9, "max_steps": 4}, "max_steps=4")):
        with pytest.raises(ConfigError, match=msg):
            simulate_stream(snn, vtest, **kwargs)
    with pytest.raises(ConfigError, match="frames must be a tensor"):
        simulate_stream(snn, [vtest[0]], 1)


def test_a_still_frame_costs_one_quiet_step_whatever_the_spike_mode(qann4, vtest):
    from spikemfm.app.streaming import stream_report

    still = {}
    for spikes, steps in ((None, "settle"), (1, 1)):  # a fixed 1-step binary stream has not settled by its end
        _, summary = stream_report(qann4, vtest[:2], spikes, steps, ["loihi2"])
        still[spikes] = summary["loihi2:still_snn_nJ"]
    assert still[None] == pytest.approx(still[1]) and still[None] > 0

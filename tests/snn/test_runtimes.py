"""The step runtime (fused numba kernels), its torch-kernel twin (the path that runs on CUDA) and the
time-batched runtime (torch, whole chunks of steps) are implementations of the same SNN: they must agree on every
output and every statistic, bit for bit."""
import importlib

import pytest
import torch

import spikemfm
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.errors import ConfigError
from spikemfm.ir import OpenClipTextTower
from spikemfm.snn import simulate

sim = importlib.import_module("spikemfm.snn.simulate")  # the module (the package exports the function)


def _stats_equal(a, b):
    assert torch.equal(a.outputs, b.outputs), float((a.outputs - b.outputs).abs().max())
    for name in ("neuron_stats", "synapse_stats", "float_stats"):
        sa, sb = getattr(a, name), getattr(b, name)
        assert sa.keys() == sb.keys(), name
        for key in sa:
            for field, va in vars(sa[key]).items():
                vb = vars(sb[key])[field]
                same = torch.equal(va, vb) if isinstance(va, torch.Tensor) else va == vb
                assert same, (name, key, field)


def _towers():
    torch.manual_seed(0)
    clip = spikemfm.load("open_clip:ViT-B-32", embed_dim=16,
                         vision_cfg=dict(image_size=8, patch_size=4, width=32, layers=2, head_width=16),
                         text_cfg=dict(context_length=10, vocab_size=200, width=32, heads=2, layers=2))
    ids = torch.randint(1, 199, (3, 10))
    ids[torch.arange(3), torch.tensor([4, 7, 9])] = 199
    from spikemfm.models.text import small_bert

    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:], mask[2, 3:] = 0, 0
    bert_x = {"input_ids": torch.randint(0, 1000, (3, 9)), "attention_mask": mask}
    return {"image": (clip.visual, torch.randn(4, 3, 8, 8)),
            "text_causal": (OpenClipTextTower(clip), ids),
            "bert_padding": (small_bert(hidden=32, layers=2, heads=2), bert_x)}


TOWERS = _towers()


@pytest.mark.parametrize("tower", list(TOWERS))
@pytest.mark.parametrize("max_spikes", [1, 3, None])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_step_and_time_runtimes_agree(tower, max_spikes, precision, monkeypatch):
    model, x = TOWERS[tower]
    qann = quantize(model, QuantConfig(bits=4, precision=precision), [x])
    snn = convert(qann, ConvertConfig(max_spikes_per_step=max_spikes))
    step = simulate(snn, x, 11, runtime="step", count_updates=True)  # every statistic, updates included
    _stats_equal(step, simulate(snn, x, 11, runtime="torch", count_updates=True))  # the CUDA path, on the CPU
    monkeypatch.setattr(sim, "_CHUNK_ELEMENTS", 1)  # one step per chunk: state carried across chunks
    _stats_equal(step, simulate(snn, x, 11, runtime="time", count_updates=True))
    monkeypatch.setattr(sim, "_CHUNK_ELEMENTS", 1 << 30)  # all 11 steps in one chunk
    _stats_equal(step, simulate(snn, x, 11, runtime="time", count_updates=True))
    assert step.outputs.dtype == qann.config.dtype
    assert all(s.updates is not None for s in step.neuron_stats.values())
    plain = simulate(snn, x, 11)  # not counted: None, every other statistic the same
    assert all(s.updates is None for s in plain.neuron_stats.values())
    assert torch.equal(plain.outputs, step.outputs)


@pytest.mark.parametrize("tower", ["image", "bert_padding"])
def test_runtimes_agree_under_the_unsigned_neuron_law(tower, monkeypatch):
    """The neuron law is a seam every runtime honours: the naive unsigned model, step vs time-batched."""
    model, x = TOWERS[tower]
    snn = convert(quantize(model, QuantConfig(bits=4), [x]), ConvertConfig(max_spikes_per_step=2,
                                                                           neuron="unsigned_if"))
    step = simulate(snn, x, 9, runtime="step")
    _stats_equal(step, simulate(snn, x, 9, runtime="torch"))
    monkeypatch.setattr(sim, "_CHUNK_ELEMENTS", 1 << 30)
    _stats_equal(step, simulate(snn, x, 9, runtime="time"))
    signed = simulate(convert(quantize(model, QuantConfig(bits=4), [x]), ConvertConfig(max_spikes_per_step=2)), x, 9)
    assert not torch.equal(step.outputs, signed.outputs)  # the law changed what the neurons carry


def test_unknown_neuron_law_is_refused():
    with pytest.raises(ConfigError, match="ConvertConfig.neuron"):
        ConvertConfig(neuron="lif")


def test_unknown_runtime_is_refused():
    model, x = TOWERS["image"]
    snn = convert(quantize(model, QuantConfig(bits=4), [x]))
    with pytest.raises(ConfigError, match="runtime"):
        simulate(snn, x, 2, runtime="fast")


@pytest.mark.parametrize("tower", list(TOWERS))
@pytest.mark.parametrize("max_spikes", [1, 2, None])
def test_adaptive_runs_stop_each_input_where_its_output_is_the_qanns(tower, max_spikes, monkeypatch):
    """The self-test of adaptive T: an input's first quiet step (no neuron moved) comes after its output became
    exactly the QANN's and stays so; both runtimes find the same steps, and the early stop changes nothing."""
    model, x = TOWERS[tower]
    qann = quantize(model, QuantConfig(bits=3), [x])
    snn = convert(qann, ConvertConfig(max_spikes_per_step=max_spikes))
    steps = 40
    full = simulate(snn, x, steps, count_updates=True)
    ref = qann(x)
    runs = [simulate(snn, x, steps, adaptive=True, count_updates=True),
            simulate(snn, x, steps, runtime="torch", adaptive=True, count_updates=True)]
    for chunk in (1, 1 << 30):
        monkeypatch.setattr(sim, "_CHUNK_ELEMENTS", chunk)
        runs.append(simulate(snn, x, steps, runtime="time", adaptive=True, count_updates=True))
    for run in runs:
        assert torch.equal(run.steps_used, runs[0].steps_used) and torch.equal(run.settled, runs[0].settled)
        _stats_equal(full, run)  # stopping once every input is quiet changes no output and no statistic
    assert full.steps_used is None and bool(runs[0].settled.all())  # 3 bits: every input settles within 40 steps
    for b, used in enumerate(runs[0].steps_used.tolist()):
        assert torch.equal(full.outputs[used - 1, b], ref[b])  # exact when the run stops
        assert (full.outputs[used - 1:, b] == full.outputs[-1, b]).all()  # and unchanged after
    if max_spikes is None:
        assert runs[0].steps_used.tolist() == [2] * len(runs[0].steps_used)  # graded: exact at 1, quiet at 2


def test_adaptive_energy_charges_neuron_updates_only_for_the_steps_run():
    from spikemfm.energy import estimate_energy

    model, x = TOWERS["image"]
    snn = convert(quantize(model, QuantConfig(bits=3), [x]), ConvertConfig(max_spikes_per_step=1))
    fixed, adaptive = simulate(snn, x, 40), simulate(snn, x, 40, adaptive=True)
    a, f = estimate_energy(adaptive, "loihi"), estimate_energy(fixed, "loihi")
    mean = float(adaptive.steps_used.double().mean())
    assert a.steps == mean < 40 and f.steps == 40
    neurons = sum(s.neurons for s in fixed.neuron_stats.values())
    # the only difference: inactive neuron updates for the steps not run (52 pJ each on Loihi)
    assert abs((f.snn_total - a.snn_total) - neurons * (40 - mean) * 52.0) < 1e-6 * f.snn_total


def test_a_run_cut_after_t_steps_is_the_run_of_t_steps():
    model, x = TOWERS["bert_padding"]
    snn = convert(quantize(model, QuantConfig(bits=4), [x]), ConvertConfig(max_spikes_per_step=2))
    _stats_equal(simulate(snn, x, 12).first(5), simulate(snn, x, 5))
    with pytest.raises(ConfigError, match="steps=13"):
        simulate(snn, x, 12).first(13)

"""The recorder's spike totals stay exact integers however large the layer."""
import torch

from spikemfm.snn.record import Recorder, _int_sum, _step_sums


def test_int_sum_is_exact_past_float32_integer_range():
    t = torch.full((2, 2 ** 21), 16.0)  # row totals 2^25 > 2^24: float32 accumulation would round the −1 away
    t[0, 0] = 15.0
    assert _int_sum(t, 2 ** 25, dim=1).tolist() == [2 ** 25 - 1, 2 ** 25]
    u = torch.full((3000, 7), 16.0)
    assert torch.equal(_int_sum(u, 3000 * 16, dim=0), u.sum(0, dtype=torch.float64).float())


def test_step_sums_are_exact_past_float32_integer_range():
    t = torch.full((2, 3000, 2001), 16.0)
    t[1, 0, 0] = 15.0
    assert _step_sums(t, 16).tolist() == [3000 * 2001 * 16, 3000 * 2001 * 16 - 1]


def test_neuron_steps_count_spikes_and_events_per_step():
    rec = Recorder(batch_size=2, timesteps=3)
    delta = torch.tensor([[[3.0, 0.0, -2.0]], [[0.0, 0.0, 1.0]]])  # one step: batch 2 × 1 row × 3 neurons
    spikes, events = rec.neuron_steps("p", 1, torch.stack([delta, torch.zeros_like(delta)]), max_step=4)
    assert spikes.tolist() == [6.0, 0.0] and events.tolist() == [3.0, 0.0]
    neurons, _, _ = rec.finish()
    assert neurons["p"].spikes.tolist() == [0.0, 6.0, 0.0] and neurons["p"].events.tolist() == [0.0, 3.0, 0.0]
    assert neurons["p"].neurons == 3


def test_synapse_totals_count_effective_ops_of_nonzero_weights():
    rec = Recorder(batch_size=1, timesteps=1)
    w = torch.tensor([[1.0, 0.0], [2.0, 3.0], [0.0, 1.0]])  # 3 outputs; input 0 feeds 2 non-zero, input 1 feeds 2
    rec.synapse_totals("fc", 0, spikes=5.0, events=3.0, col_spikes=torch.tensor([4.0, 1.0], dtype=torch.float64),
                       col_events=torch.tensor([2.0, 1.0], dtype=torch.float64), w_int=w)
    _, syn, _ = rec.finish()
    s = syn["fc"]
    assert s.ops.tolist() == [15.0] and s.event_ops.tolist() == [9.0]  # spikes × fan-out 3
    assert s.effective_ops.tolist() == [4 * 2 + 1 * 2] and s.effective_event_ops.tolist() == [2 * 2 + 1 * 2]

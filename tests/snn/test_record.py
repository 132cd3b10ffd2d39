"""The recorder's spike totals stay exact integers however large the layer."""
import torch

from spikemfm.snn.record import Recorder, _int_sum


def test_int_sum_is_exact_past_float32_integer_range():
    t = torch.full((3000, 2001), 16.0)  # total 96 048 000 > 2^24: float32 accumulation would round
    t[0, 0] = 15.0
    assert float(_int_sum(t, t.numel() * 16)) == 3000 * 2001 * 16 - 1
    assert torch.equal(_int_sum(t, 3000 * 16, dim=0), t.sum(0, dtype=torch.float64).float())


def test_neuron_step_counts_spikes_and_events():
    rec = Recorder(batch_size=2, timesteps=1)
    delta = torch.tensor([[[3.0, 0.0, -2.0]], [[0.0, 0.0, 1.0]]])
    assert rec.neuron_step("p", 0, delta, max_step=4) == (6.0, 3.0)
    neurons, _, _ = rec.finish()
    assert neurons["p"].spikes.tolist() == [6.0] and neurons["p"].events.tolist() == [3.0]
    assert neurons["p"].neurons == 3

"""Fused neuron kernels: hand-worked steps, and bit-identity with the torch formulas they replace."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikemfm.convert.quantizers import ActQuant
from spikemfm.snn import kernels


def test_quant_neuron_step_by_hand():
    # θ = 0.5: levels ⌊x/θ + ½⌋ = 1, −1, 7 → clamp to hi = 3; binary spikes from count 0
    x = torch.tensor([[0.26, -0.74, 3.4]])
    f = kernels.fire_quant(x, 0.5, -3, 3, 1, None, int8=True)
    assert f.count.tolist() == [[1.0, -1.0, 1.0]] and f.count8.tolist() == [[1, -1, 1]]
    assert (f.spikes, f.events) == (3.0, 3.0) and f.row_active.tolist() == [True]
    g = kernels.fire_quant(x, 0.5, -3, 3, 1, f.count, int8=False)  # only the third still climbs (target 3)
    assert g.count.tolist() == [[1.0, -1.0, 2.0]] and g.count8 is None
    assert g.delta.tolist() == [[0.0, 0.0, 1.0]] and (g.spikes, g.events) == (1.0, 1.0)
    assert g.col_spikes.tolist() == [0.0, 0.0, 1.0]
    h = kernels.fire_quant(x, 0.5, -3, 3, None, None, int8=False)  # graded: straight to the level
    assert h.count.tolist() == [[1.0, -1.0, 3.0]] and (h.spikes, h.events) == (5.0, 3.0)


def test_lut_neuron_step_by_hand():
    lut = torch.tensor([-1.0, 0.0, 0.0, 2.0, 5.0])  # entries for input levels −2 … 2
    c_in = torch.tensor([[-2.0, 2.0], [0.0, 1.0]])
    f = kernels.fire_lut(c_in, lut, -2, 2, None, int8=False)
    assert f.count.tolist() == [[-1.0, 2.0], [0.0, 2.0]]
    assert (f.spikes, f.events) == (5.0, 3.0) and f.row_active.tolist() == [True, True]
    assert f.col_spikes.tolist() == [1.0, 4.0] and f.col_events.tolist() == [1.0, 2.0]


def _torch_step(x, q, max_spikes, prev):
    target = q.level(x).to(torch.float32)
    d = target - prev
    if max_spikes is not None:
        d = d.clamp(-max_spikes, max_spikes)
    return prev + d, d


@settings(max_examples=25, deadline=None)
@given(bits=st.integers(2, 10), max_spikes=st.sampled_from([1, 3, None]), dtype=st.sampled_from(["f32", "f64"]),
       rows=st.integers(1, 40), cols=st.integers(1, 70), seed=st.integers(0, 1000))
def test_quant_kernel_matches_torch_bit_for_bit(bits, max_spikes, dtype, rows, cols, seed):
    g = torch.Generator().manual_seed(seed)
    dt = torch.float32 if dtype == "f32" else torch.float64
    hi = 2 ** (bits - 1) - 1
    step = float(torch.rand(1, generator=g)) * 0.3 + 0.01
    q = ActQuant("p", step, -hi, hi, bits)
    # half of the inputs sit exactly on rounding ties (k + ½)·θ, where any rounding difference would show
    x = (torch.randn(rows, cols, generator=g) * hi * step).to(dt)
    ties = (torch.randint(-hi, hi, (rows, cols), generator=g) + 0.5).to(dt) * step
    x = torch.where(torch.rand(rows, cols, generator=g) < 0.5, x, ties)
    prev = torch.randint(-hi, hi + 1, (rows, cols), generator=g).float()
    f = kernels.fire_quant(x, step, -hi, hi, max_spikes, prev, int8=hi <= 127)
    count, d = _torch_step(x, q, max_spikes, prev)
    assert torch.equal(f.count, count) and torch.equal(f.delta, d)
    assert f.spikes == float(d.abs().sum()) and f.events == float((d != 0).sum())
    assert torch.equal(f.row_active, (d != 0).any(-1))
    if hi <= 127:
        assert torch.equal(f.count8, count.to(torch.int8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_affine_kernel_matches_qlinear_affine(dtype):
    from spikemfm.convert.quantizers import QLinear

    g = torch.Generator().manual_seed(0)
    acc = torch.randint(-2 ** 20, 2 ** 20, (37, 19), generator=g, dtype=torch.int32)
    ql = QLinear("fc", torch.zeros(19, 5), torch.ones(19), torch.rand(19, generator=g, dtype=torch.float64),
                 torch.randn(19, generator=g, dtype=torch.float64), 8)
    assert torch.equal(kernels.affine(acc, ql.out_scale, ql.bias, dtype), ql.affine(acc, dtype))

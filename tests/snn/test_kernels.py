"""Fused neuron kernels: hand-worked steps, and bit-identity with the torch formulas they replace."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikemfm.quant.params import ActQuant
from spikemfm.snn import kernels


def test_quant_neuron_step_by_hand():
    # θ = 0.5: levels ⌊x/θ + ½⌋ = 1, −1, 7 → clamp to hi = 3; binary spikes from count 0
    x = torch.tensor([[0.26, -0.74, 3.4]])
    f = kernels.fire_quant(x, 0.5, -3, 3, 1, None)
    assert f.count.dtype == torch.int8 and f.count.tolist() == [[1, -1, 1]]
    assert (f.spikes, f.events) == (3.0, 3.0) and f.row_active.tolist() == [True]
    g = kernels.fire_quant(x, 0.5, -3, 3, 1, f.count)  # only the third still climbs (target 3)
    assert g.count.tolist() == [[1, -1, 2]]
    assert g.delta.tolist() == [[0, 0, 1]] and (g.spikes, g.events) == (1.0, 1.0)
    assert g.col_spikes.tolist() == [0.0, 0.0, 1.0]
    h = kernels.fire_quant(x, 0.5, -3, 3, None, None)  # graded: straight to the level
    assert h.count.tolist() == [[1, -1, 3]] and (h.spikes, h.events) == (5.0, 3.0)


def test_lut_neuron_step_by_hand():
    lut = torch.tensor([-1.0, 0.0, 0.0, 2.0, 5.0])  # entries for input levels −2 … 2
    c_in = torch.tensor([[-2, 2], [0, 1]], dtype=torch.int8)
    f = kernels.fire_lut(c_in, lut, -2, 2, None)
    assert f.count.tolist() == [[-1, 2], [0, 2]]
    assert (f.spikes, f.events) == (5.0, 3.0) and f.row_active.tolist() == [True, True]
    assert f.col_spikes.tolist() == [1.0, 4.0] and f.col_events.tolist() == [1.0, 2.0]


def _torch_step(x, q, max_spikes, prev):
    target = q.level(x).to(torch.float64)
    d = target - prev.double()
    if max_spikes is not None:
        d = d.clamp(-max_spikes, max_spikes)
    return prev.double() + d, d


@settings(max_examples=25, deadline=None)
@given(bits=st.integers(2, 16), unsigned=st.booleans(), max_spikes=st.sampled_from([1, 3, None]),
       dtype=st.sampled_from(["f32", "f64"]), rows=st.integers(1, 40), cols=st.integers(1, 70),
       seed=st.integers(0, 1000))
def test_quant_kernel_matches_torch_bit_for_bit(bits, unsigned, max_spikes, dtype, rows, cols, seed):
    g = torch.Generator().manual_seed(seed)
    dt = torch.float32 if dtype == "f32" else torch.float64
    lo, hi = (0, 2 ** bits - 1) if unsigned else (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)
    step = float(torch.rand(1, generator=g)) * 0.3 + 0.01
    q = ActQuant("p", step, lo, hi, bits)
    # half of the inputs sit exactly on rounding ties (k + ½)·θ, where any rounding difference would show
    x = (torch.randn(rows, cols, generator=g) * hi * step).to(dt)
    ties = (torch.randint(lo, hi, (rows, cols), generator=g) + 0.5).to(dt) * step
    x = torch.where(torch.rand(rows, cols, generator=g) < 0.5, x, ties)
    prev = torch.randint(lo, hi + 1, (rows, cols), generator=g).to(kernels.count_dtype(lo, hi))
    f = kernels.fire_quant(x, step, lo, hi, max_spikes, prev)
    count, d = _torch_step(x, q, max_spikes, prev)
    assert f.count.dtype == prev.dtype and torch.equal(f.count.double(), count)
    assert torch.equal(f.delta.double(), d)
    assert f.spikes == float(d.abs().sum()) and f.events == float((d != 0).sum())
    assert torch.equal(f.row_active, (d != 0).any(-1))
    assert torch.equal(f.col_spikes, d.abs().sum(0)) and torch.equal(f.col_events, (d != 0).double().sum(0))
    n = kernels.fire_quant(x, step, lo, hi, max_spikes, prev, columns=False)  # totals only, rows of any width
    assert torch.equal(n.count, f.count) and (n.spikes, n.events) == (f.spikes, f.events)
    assert n.col_spikes is None and n.row_active is None


def test_count_dtype_is_the_narrowest_that_holds_the_levels():
    assert kernels.count_dtype(-127, 127) == torch.int8
    assert kernels.count_dtype(0, 255) == torch.uint8
    assert kernels.count_dtype(-128, 128) == torch.int16
    assert kernels.count_dtype(0, 65535) == torch.int32
    assert kernels.count_dtype(3, 5) == torch.int8  # counts start at 0
    with pytest.raises(ValueError, match="int32"):
        kernels.count_dtype(0, 2.0 ** 31)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_affine_kernel_matches_qlinear_affine(dtype):
    from spikemfm.quant.params import QLinear

    g = torch.Generator().manual_seed(0)
    acc = torch.randint(-2 ** 20, 2 ** 20, (37, 19), generator=g, dtype=torch.int32)
    ql = QLinear("fc", torch.zeros(19, 5), torch.ones(19), torch.rand(19, generator=g, dtype=torch.float64),
                 torch.randn(19, generator=g, dtype=torch.float64), 8)
    assert torch.equal(kernels.affine(acc, ql.out_scale, ql.bias, dtype), ql.affine(acc, dtype))


@settings(max_examples=20, deadline=None)
@given(dtype=st.sampled_from([torch.float32, torch.float64]), acc_kind=st.sampled_from(["int32", "float"]),
       bias=st.booleans(), max_spikes=st.sampled_from([1, 4, None]), rows=st.integers(1, 30),
       cols=st.integers(1, 40), seed=st.integers(0, 1000))
def test_fused_affine_neuron_matches_affine_then_neuron(dtype, acc_kind, bias, max_spikes, rows, cols, seed):
    g = torch.Generator().manual_seed(seed)
    acc = torch.randint(-5000, 5000, (rows, cols), generator=g, dtype=torch.int32)
    if acc_kind == "float":
        acc = acc.to(dtype)
    scale = (torch.rand(cols, generator=g, dtype=torch.float64) * 1e-3).to(dtype)
    b = (torch.randn(cols, generator=g, dtype=torch.float64)).to(dtype) if bias else None
    step = 0.01 + float(torch.rand(1, generator=g)) * 0.05
    prev = torch.randint(-127, 128, (rows, cols), generator=g).to(torch.int8)
    x = kernels.affine(acc, scale, b, dtype)
    want = kernels.fire_quant(x, step, -127, 127, max_spikes, prev)
    got = kernels.fire_affine(acc, scale, b, step, -127, 127, max_spikes, prev, torch.Size([rows, cols]))
    assert torch.equal(got.count, want.count) and (got.spikes, got.events) == (want.spikes, want.events)
    assert torch.equal(got.col_spikes, want.col_spikes) and torch.equal(got.col_events, want.col_events)
    assert torch.equal(got.row_active, want.row_active)
    n = kernels.fire_affine(acc, scale, b, step, -127, 127, max_spikes, prev, torch.Size([rows, cols]), columns=False)
    assert torch.equal(n.count, want.count) and (n.spikes, n.events) == (want.spikes, want.events)


@pytest.mark.parametrize("heads", [1, 3])
def test_fused_neuron_writes_attention_heads(heads):
    # rows = (batch 2, tokens 5), out = (heads, 4): counts come back as (2, heads, 5, 4), head-major in memory
    g = torch.Generator().manual_seed(heads)
    acc = torch.randint(-300, 300, (10, heads * 4), generator=g, dtype=torch.int32)
    scale, bias = torch.full((heads * 4,), 0.01), torch.randn(heads * 4, generator=g)
    flat = kernels.fire_affine(acc, scale, bias, 0.5, -7, 7, 2, None, torch.Size([2, 5, heads * 4]))
    split = torch.Size([2, heads, 5, 4])
    got = kernels.fire_affine(acc, scale, bias, 0.5, -7, 7, 2, None, split, columns=False, heads=heads)
    want = flat.count.unflatten(-1, (heads, 4)).transpose(1, 2)
    assert got.count.is_contiguous() and torch.equal(got.count, want)
    nxt = kernels.fire_affine(acc, scale, bias, 0.5, -7, 7, 2, got.count, split, columns=False, heads=heads)
    ref = kernels.fire_affine(acc, scale, bias, 0.5, -7, 7, 2, flat.count, torch.Size([2, 5, heads * 4]))
    assert torch.equal(nxt.count, ref.count.unflatten(-1, (heads, 4)).transpose(1, 2))
    assert (nxt.spikes, nxt.events) == (ref.spikes, ref.events)
    with pytest.raises(ValueError, match="head-major"):
        kernels.fire_affine(acc, scale, bias, 0.5, -7, 7, 2, None, torch.Size([2, heads, 5, 3]), False, heads)

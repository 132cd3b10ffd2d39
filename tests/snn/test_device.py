"""The device-agnostic simulation path: torch neuron kernels bit-identical to the fused numba kernels, devices
resolved with clear errors, bounded-memory chunking that changes no output or spike statistic, exact int8 GEMM
fallbacks."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import spikemfm.ir.engine
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.errors import ConfigError
from spikemfm.quant import exact
from spikemfm.quant.params import ActQuant
from spikemfm.snn import batching, kernels, kernels_torch, simulate, simulate_stream
from spikemfm.snn.device import model_device, to_device

from tests.snn.test_runtimes import TOWERS, _stats_equal


def _same(a, b):
    assert a.count.dtype == b.count.dtype and a.count.shape == b.count.shape and torch.equal(a.count, b.count)
    assert (a.spikes, a.events) == (b.spikes, b.events)
    for f in ("col_spikes", "col_events", "row_active"):
        va, vb = getattr(a, f), getattr(b, f)
        assert (va is None and vb is None) or torch.equal(va, vb), f


@settings(max_examples=30, deadline=None)
@given(bits=st.integers(2, 12), unsigned=st.booleans(), max_spikes=st.sampled_from([1, 3, None]),
       dtype=st.sampled_from([torch.float32, torch.float64]), rows=st.integers(1, 30), cols=st.integers(1, 50),
       first=st.booleans(), seed=st.integers(0, 1000))
def test_torch_quant_kernel_is_the_numba_kernel(bits, unsigned, max_spikes, dtype, rows, cols, first, seed):
    g = torch.Generator().manual_seed(seed)
    lo, hi = (0, 2 ** bits - 1) if unsigned else (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)
    step = float(torch.rand(1, generator=g)) * 0.3 + 0.01
    x = (torch.randn(rows, cols, generator=g) * hi * step).to(dtype)
    ties = (torch.randint(lo, hi, (rows, cols), generator=g) + 0.5).to(dtype) * step  # rounding ties
    x = torch.where(torch.rand(rows, cols, generator=g) < 0.5, x, ties)
    prev = None if first else torch.randint(lo, hi + 1, (rows, cols), generator=g).to(kernels.count_dtype(lo, hi))
    for columns in (True, False):
        _same(kernels_torch.fire_quant(x, step, lo, hi, max_spikes, prev, columns),
              kernels.fire_quant(x, step, lo, hi, max_spikes, prev, columns))


@settings(max_examples=20, deadline=None)
@given(dtype=st.sampled_from([torch.float32, torch.float64]), acc_kind=st.sampled_from(["int32", "float"]),
       bias=st.booleans(), max_spikes=st.sampled_from([1, 4, None]), heads=st.sampled_from([None, 1, 2]),
       seed=st.integers(0, 1000))
def test_torch_affine_kernels_are_the_numba_kernels(dtype, acc_kind, bias, max_spikes, heads, seed):
    g = torch.Generator().manual_seed(seed)
    rows, cols = 2 * 5, 8  # (batch 2, tokens 5) × (heads, 8 / heads)
    acc = torch.randint(-5000, 5000, (rows, cols), generator=g, dtype=torch.int32)
    acc = acc.to(dtype) if acc_kind == "float" else acc
    scale = (torch.rand(cols, generator=g, dtype=torch.float64) * 1e-3).to(dtype)
    b = torch.randn(cols, generator=g, dtype=torch.float64).to(dtype) if bias else None
    step = 0.01 + float(torch.rand(1, generator=g)) * 0.05
    assert torch.equal(kernels_torch.affine(acc, scale, b, dtype), kernels.affine(acc, scale, b, dtype))
    if heads is None:
        shape, prev = torch.Size([2, 5, cols]), torch.randint(-127, 128, (2, 5, cols), generator=g).to(torch.int8)
        args = (acc, scale, b, step, -127, 127, max_spikes, prev, shape)
        _same(kernels_torch.fire_affine(*args), kernels.fire_affine(*args))
        _same(kernels_torch.fire_affine(*args, columns=False), kernels.fire_affine(*args, columns=False))
    else:
        shape = torch.Size([2, heads, 5, cols // heads])
        prev = torch.randint(-127, 128, tuple(shape), generator=g).to(torch.int8)
        args = (acc, scale, b, step, -127, 127, max_spikes, prev, shape, False, heads)
        _same(kernels_torch.fire_affine(*args), kernels.fire_affine(*args))


@pytest.mark.parametrize("max_spikes", [1, 2, None])
def test_torch_lut_kernel_is_the_numba_kernel(max_spikes):
    g = torch.Generator().manual_seed(1)
    lut = torch.randint(-20, 60, (15,), generator=g).to(torch.float32)  # output levels of input levels −7 … 7
    c_in = torch.randint(-7, 8, (6, 11), generator=g).to(torch.int8)
    prev = torch.randint(-20, 60, (6, 11), generator=g).to(kernels.count_dtype(-20, 59))
    for p in (None, prev):
        _same(kernels_torch.fire_lut(c_in, lut, -7, max_spikes, p), kernels.fire_lut(c_in, lut, -7, max_spikes, p))


def test_level_is_a_true_division_on_every_dtype():
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        q = ActQuant("p", 0.0123456789, -127, 127, 8)
        x = torch.randn(10000, generator=g, dtype=torch.float64).to(dtype)
        assert torch.equal(q.level(x.clone()), (x / q.step + 0.5).floor().clamp(-127, 127))


@pytest.mark.parametrize("tower", list(TOWERS))
@pytest.mark.parametrize("max_spikes", [1, None])
def test_chunked_batches_equal_the_whole_batch(tower, max_spikes):
    model, x = TOWERS[tower]
    snn = convert(quantize(model, QuantConfig(bits=4), [x]), ConvertConfig(max_spikes_per_step=max_spikes))
    whole = simulate(snn, x, 9, adaptive=True, count_updates=True)
    ids = x["input_ids"] if isinstance(x, dict) else x if x.dtype == torch.long else None
    one = batching.bytes_per_input(snn, None if ids is None else ids.shape[-1]) / 2 ** 20
    xin = spikemfm.ir.engine.as_inputs(snn.graph, x)
    assert batching.batch_chunk(snn, xin, 1.5 * one) == 1
    parts = simulate(snn, x, 9, adaptive=True, max_memory_mib=1.5 * one, count_updates=True)  # an input a chunk
    assert torch.equal(whole.outputs, parts.outputs) and parts.batch_size == whole.batch_size
    assert torch.equal(whole.steps_used, parts.steps_used) and torch.equal(whole.settled, parts.settled)
    for k, v in whole.neuron_stats.items():
        assert torch.equal(v.spikes, parts.neuron_stats[k].spikes) and v.neurons == parts.neuron_stats[k].neurons
        assert torch.equal(v.updates, parts.neuron_stats[k].updates)  # per neuron: chunks add up exactly
    for k, v in whole.synapse_stats.items():
        w = parts.synapse_stats[k]
        assert all(torch.equal(getattr(v, f), getattr(w, f)) for f in ("ops", "event_ops", "effective_ops",
                                                                         "effective_event_ops"))
    for k, v in whole.float_stats.items():  # a chunk is charged only where its own input changed
        assert (parts.float_stats[k].elements <= v.elements).all()
        assert parts.float_stats[k].elements[0] == v.elements[0]


def test_merging_the_halves_of_a_batch_gives_the_batch():
    model, x = TOWERS["image"]
    snn = convert(quantize(model, QuantConfig(bits=4), [x]), ConvertConfig(max_spikes_per_step=2))
    whole = simulate(snn, x, 7)
    merged = batching.merge_results([simulate(snn, x[:1], 7), simulate(snn, x[1:], 7)])
    assert torch.equal(merged.outputs, whole.outputs) and merged.total_spikes() == whole.total_spikes()
    with pytest.raises(ConfigError, match="differ in T"):
        batching.merge_results([simulate(snn, x[:1], 7), simulate(snn, x[1:], 6)])


def test_memory_budget_and_device_errors_are_clear():
    model, x = TOWERS["image"]
    snn = convert(quantize(model, QuantConfig(bits=4), [x]))
    with pytest.raises(ConfigError, match="max_memory_mib=1e-06 is below one input"):
        simulate(snn, x, 2, max_memory_mib=1e-6)
    with pytest.raises(ConfigError, match="max_memory_mib"):
        simulate(snn, x, 2, max_memory_mib=-3)
    with pytest.raises(ConfigError, match="not a torch device"):
        simulate(snn, x, 2, device="gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            simulate(snn, x, 2, device="cuda")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            simulate_stream(snn, x[None], 2, device="cuda")


def test_to_device_keeps_the_model_and_moves_a_copy():
    model, x = TOWERS["image"]
    qann = quantize(model, QuantConfig(bits=4), [x])
    snn = convert(qann)
    assert to_device(snn, "cpu") is snn and model_device(snn).type == "cpu"
    moved = to_device(snn, "meta")  # a device with no data: every tensor went
    assert model_device(moved).type == "meta" and model_device(snn).type == "cpu"
    assert all(lin.out_scale.is_meta for lin in moved.qparams.linears.values())
    _stats_equal(simulate(snn, x, 4), simulate(snn, x, 4, device="cpu"))


@pytest.mark.parametrize("k, n", [(3, 5), (8, 16)])
@pytest.mark.parametrize("m", [4, 17])
def test_int8_gemm_fallback_equals_the_int8_gemm(m, k, n):
    g = torch.Generator().manual_seed(m + k)
    x = torch.randint(-127, 128, (m, k), generator=g, dtype=torch.int8)
    w = torch.randint(-127, 128, (k, n), generator=g, dtype=torch.int8)
    assert torch.equal(exact.int_matmul_float64(x, w), torch._int_mm(x, w))
    assert exact.int_mm_takes(x, w)  # the CPU takes every shape
    cuda_ok = m > 16 and k % 8 == 0 and n % 8 == 0
    assert exact.int_mm_takes(x.to("meta"), w.to("meta")) == cuda_ok  # the CUDA rule, on a non-CPU device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (scripts/gpu_check.sh runs it on one)")
@pytest.mark.parametrize("tower", list(TOWERS))
@pytest.mark.parametrize("max_spikes", [1, None])
def test_cuda_snn_equals_its_cuda_qann(tower, max_spikes):
    """On a GPU: the SNN accumulates exactly to the QANN evaluated on the same device (both through the same
    float kernels); its spike counts match the CPU run's wherever the two devices' float paths agree."""
    model, x = TOWERS[tower]
    qann = quantize(model, QuantConfig(bits=4), [x])
    snn = convert(qann, ConvertConfig(max_spikes_per_step=max_spikes))
    dev = torch.device("cuda")
    xin = spikemfm.ir.engine.as_inputs(snn.graph, x)
    from spikemfm.snn.device import inputs_to

    xd = inputs_to(xin, dev)
    run = simulate(snn, xd, 40, device=dev)
    assert run.outputs.device.type == "cuda"
    assert torch.equal(run.outputs[-1], to_device(qann, dev)(xd))
    cpu = simulate(snn, x, 40)
    assert torch.allclose(run.outputs.cpu(), cpu.outputs, rtol=1e-5, atol=1e-6)

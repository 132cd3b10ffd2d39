"""Quantization-aware training: it lowers the QANN's error to the float model, keeps every bit width, works for
every family through the extracted graph, and its result converts exactly (SNN ≡ QANN)."""
import pytest
import torch

import spikemfm
from spikemfm.convert import ConvertConfig, MixedPrecisionConfig, QATConfig, QuantConfig, qat, quantize
from spikemfm.snn import convert
from spikemfm.convert.qat import QATOps
from spikemfm.errors import ConfigError
from spikemfm.ir import engine


def _vit():
    torch.manual_seed(0)
    return spikemfm.load("timm:vit_tiny_patch16_224", img_size=16, patch_size=8, depth=2, num_heads=2,
                         embed_dim=32, num_classes=5), [torch.randn(32, 3, 16, 16) for _ in range(2)]


def _bert():
    from spikemfm.models.text import small_bert

    torch.manual_seed(0)
    ids = [torch.randint(0, 1000, (16, 8)) for _ in range(2)]
    return small_bert(hidden=32, layers=2, heads=2), ids


def _rel_error(qann, batches):
    num = sum(float((qann(x) - qann.float_forward(x)).pow(2).sum()) for x in batches)
    return num / sum(float(qann.float_forward(x).pow(2).sum()) for x in batches)


@pytest.mark.parametrize("family", [_vit, _bert])
@pytest.mark.parametrize("config", [QuantConfig(bits=3), MixedPrecisionConfig(budget=3.5, max_calib_batches=2,
                                                                               sensitivity_batches=1)])
def test_qat_lowers_the_error_keeps_the_bits_and_converts_exactly(family, config):
    model, batches = family()
    ptq = quantize(model, config, batches)
    trained = qat(ptq, batches, config=QATConfig(steps=40, lr=1e-3, step_lr=1e-2))
    assert _rel_error(trained, batches) < _rel_error(ptq, batches)
    assert {k: (q.lo, q.hi, q.bits) for k, q in trained.qparams.quants.items()} == \
        {k: (q.lo, q.hi, q.bits) for k, q in ptq.qparams.quants.items()}
    assert {k: (ql.bits, ql.w_int.abs().max() <= 2 ** (ql.bits - 1) - 1) for k, ql in trained.qparams.linears.items()} \
        == {k: (ql.bits, True) for k, ql in ptq.qparams.linears.items()}
    x = batches[0][:4]
    res = spikemfm.simulate(convert(trained, ConvertConfig(max_spikes_per_step=None)), x, 2)
    assert torch.equal(res.outputs[-1], trained(x))  # graded spikes: exact from step 1


def test_the_training_forward_is_the_qanns_forward():
    """Before any step, QATOps (straight-through rounding, steps from the QANN) computes the QANN's output."""
    model, batches = _vit()
    ptq = quantize(model, QuantConfig(bits=4), batches)
    log_steps = {p: torch.tensor(q.step, dtype=torch.float64).log() for p, q in ptq.qparams.quants.items()}
    x = batches[1][:6]
    out = engine.run(ptq.graph, engine.as_inputs(ptq.graph, x), QATOps(ptq, log_steps), torch.float64)
    assert torch.allclose(out, ptq(x), rtol=1e-9, atol=1e-9)


def test_qat_distils_from_the_users_module_when_given():
    model, batches = _vit()
    ptq = quantize(model, QuantConfig(bits=3), batches)
    trained = qat(ptq, batches, teacher=model, config=QATConfig(steps=20, lr=1e-3, step_lr=1e-2))
    assert _rel_error(trained, batches) < _rel_error(ptq, batches)


def test_cosine_schedule_starts_at_the_full_rate_and_trains():
    model, batches = _vit()
    ptq = quantize(model, QuantConfig(bits=3), batches)
    one = qat(ptq, batches, config=QATConfig(steps=1, lr=1e-3, step_lr=1e-2, schedule="cosine"))
    plain = qat(ptq, batches, config=QATConfig(steps=1, lr=1e-3, step_lr=1e-2))
    assert _rel_error(one, batches) == _rel_error(plain, batches)  # the decay applies after the first step
    trained = qat(ptq, batches, config=QATConfig(steps=20, lr=1e-3, step_lr=1e-2, schedule="cosine"))
    assert _rel_error(trained, batches) < _rel_error(ptq, batches)


@pytest.mark.parametrize("kwargs, fragment", [(dict(steps=0), "steps=0"), (dict(lr=-1.0), "lr=-1.0"),
                                              (dict(steps=2.5), "steps=2.5"),
                                              (dict(schedule="linear"), "schedule='linear'")])
def test_bad_qat_configs(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        QATConfig(**kwargs)
    model, batches = _vit()
    with pytest.raises(ConfigError, match="no data"):
        qat(quantize(model, QuantConfig(bits=4), batches), [])

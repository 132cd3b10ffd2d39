"""SmoothQuant folding: the smoothed float graph computes the same function; the QANN built on it stays exact."""
from __future__ import annotations

import pytest
import torch

import spikemfm
from spikemfm.convert.smooth import channel_ranges, smooth
from spikemfm.ir import nodes as N
from spikemfm.ir.extract import extract
from spikemfm.ir.float_ops import FloatOps
from spikemfm.ir import engine

from .conftest import VOCAB, tiny_lm

IDS = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_smoothing_keeps_the_function(family, alpha):
    g = N.float64_copy(extract(tiny_lm(family)))
    s = smooth(g, channel_ranges(g, [IDS]), alpha)
    ref = engine.run(g, engine.as_inputs(g, IDS), FloatOps(), torch.float64)
    out = engine.run(s, engine.as_inputs(s, IDS), FloatOps(), torch.float64)
    assert float((out - ref).abs().max()) <= 1e-9 * float(ref.abs().max())
    w0, w1 = g.blocks[0].attn.q.weight, s.blocks[0].attn.q.weight
    assert not torch.equal(w0, w1)  # the scales really moved into the weights


def test_alpha_one_equalises_channel_ranges():
    g = N.float64_copy(extract(tiny_lm("llama")))
    s = smooth(g, channel_ranges(g, [IDS]), 1.0)
    r = channel_ranges(s, [IDS])[s.blocks[0].attn.point(N.Role.ATTN_IN)]
    assert torch.allclose(r, r.new_full(r.shape, float(r[0])), rtol=1e-9)


def test_smoothed_qann_snn_still_exact():
    q = spikemfm.quantize(tiny_lm("qwen2"), spikemfm.QuantConfig(bits=8, smooth=0.5), [IDS])
    snn = spikemfm.convert(q, spikemfm.ConvertConfig(max_spikes_per_step=None))
    assert torch.equal(spikemfm.simulate(snn, IDS, 4).output, q(IDS))


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_unit_interval_refused(alpha):
    with pytest.raises(spikemfm.ConfigError, match="smooth"):
        spikemfm.QuantConfig(smooth=alpha)

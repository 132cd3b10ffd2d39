"""The fixed-point variant's integer kernels and its PyTorch reference (no Lava needed)."""
import math

import pytest
import torch

import spikemfm
from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.quant.params import QParams
from spikemfm.quant.params import ActQuant
from spikemfm.errors import ConfigError
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.neuromorphic import FixedPointConfig, Part, export_lava
from spikemfm.ir import units
from spikemfm.ir.units.base import isqrt
from spikemfm.ir.units.softmax import Softmax
from spikemfm.neuromorphic.fixed import FixedParams, FixedStepOps, fixed_params
from spikemfm.neuromorphic.parts import reference_fixed, reference_float


def test_isqrt_is_the_exact_integer_root():
    g = torch.Generator().manual_seed(0)
    n = torch.cat([torch.randint(0, 2 ** 62, (2000,), generator=g), torch.arange(0, 300),
                   torch.tensor([2 ** 52 - 1, 2 ** 52, (2 ** 31 - 1) ** 2, (2 ** 31 - 1) ** 2 - 1])])
    assert isqrt(n).tolist() == [math.isqrt(int(v)) for v in n]


def _params(f=16):
    fxp = fixed_params(_one_block_graph(), QParams(), FixedPointConfig(frac_bits=f))
    return fxp


def _one_block_graph():
    torch.manual_seed(0)
    d = 8
    lin = lambda p: N.Linear(p, torch.randn(d, d), torch.zeros(d))  # noqa: E731
    ln = lambda p: N.LayerNorm(p, torch.rand(d) + 0.5, torch.randn(d) * 0.1, 1e-5)  # noqa: E731
    attn = N.Attention("a", lin("a.q"), lin("a.k"), lin("a.v"), lin("a.o"), 2, False)
    mlp = N.MLP("m", lin("m.fc1"), "gelu", lin("m.fc2"))
    block = N.Block("b", True, ln("b.ln1"), attn, ln("b.ln2"), mlp)
    embed = N.PatchEmbed("e", torch.randn(d, 1, 2, 2), None, None, torch.zeros(4, d), None)
    return N.EncoderGraph("g", "image", embed, (block,), N.Readout("r", ln("r.norm"), "cls", None))


def test_integer_layer_norm_tracks_the_float_one():
    fxp = _params()
    x = torch.randn(5, 8, dtype=torch.float64) * 3 + 1
    node = _one_block_graph().blocks[0].ln1
    kind = units.kind_of(node)
    y = fxp.to_float(kind.fixed(node, fxp.unit_params(node), fxp.to_fixed(x), None, fxp.cfg.frac_bits))
    assert torch.allclose(y, kind.forward(node, x), atol=1e-3)


def test_integer_softmax_tracks_the_float_one_and_blocks_masked_pairs():
    fxp = _params()
    s = torch.randn(3, 6, 6, dtype=torch.float64) * 4
    mask = torch.ones(6, 6, dtype=torch.bool).triu(1)[None]
    node, kind = Softmax("b.attn.softmax"), units.get("softmax")
    p = kind.fixed(node, fxp.unit_params(node), fxp.to_fixed(s), mask, fxp.cfg.frac_bits)
    assert int(p[mask.expand_as(p)].abs().sum()) == 0
    assert torch.allclose(fxp.to_float(p), kind.forward(node, s, mask), atol=1e-4)
    assert (p.sum(-1) <= 2 ** 16).all() and (p.sum(-1) >= 2 ** 16 - 6).all()  # floor division loses < 1 per entry


def test_integer_if_neuron_hand_worked_spike_train():
    # θ = 4 (step 4/2^16), constant input 10 units: level ⌊(10 + 2)/4⌋ = 3, at most 1 spike per step;
    # then the input drops to −5: level ⌊(−5 + 2)/4⌋ = −1.
    qp = QParams(quants={"p": ActQuant("p", 4 / 2 ** 16, -7, 7, 4)})
    fxp = FixedParams(FixedPointConfig(), theta={"p": 4})
    ops = FixedStepOps(qp, fxp, max_spikes=1)
    counts = [int(ops.neuron("p", torch.tensor([x]))) for x in (10, 10, 10, 10, -5, -5, -5, -5, -5)]
    assert counts == [1, 2, 3, 3, 2, 1, 0, -1, -1]


def test_fixed_point_config_and_overflow_errors():
    with pytest.raises(ConfigError, match="frac_bits"):
        FixedPointConfig(frac_bits=40)
    with pytest.raises(ConfigError, match="value_bits"):
        FixedPointConfig(value_bits=4)
    ops = FixedStepOps(QParams(), FixedParams(FixedPointConfig(value_bits=8)), None)
    with pytest.raises(ConfigError, match="declared 8 bits"):
        ops.inject(torch.tensor([1000]))


@pytest.fixture(scope="module")
def small_snn():
    torch.manual_seed(0)
    vit = spikemfm.load("timm:vit_tiny_patch16_224", img_size=8, patch_size=4, depth=2, num_heads=2, embed_dim=16,
                        mlp_ratio=2.0, num_classes=6, global_pool="token")
    qann = quantize(vit, QuantConfig(bits=6), [torch.randn(16, 3, 8, 8)])
    return convert(qann, ConvertConfig(max_spikes_per_step=4))


def test_fixed_reference_stays_close_to_the_float_snn(small_snn):
    x = engine.as_inputs(small_snn.graph, torch.randn(3, 3, 8, 8))
    fxp = fixed_params(small_snn.graph, small_snn.qparams, FixedPointConfig())
    fixed = reference_fixed(small_snn, Part("tower"), x, 24, fxp)
    flt = reference_float(small_snn, Part("tower"), x, 24)
    assert fixed.outputs.dtype == torch.int64 and set(fixed.spikes) == set(flt.spikes)
    err = (fxp.to_float(fixed.outputs[-1]) - flt.outputs[-1]).norm() / flt.outputs[-1].norm()
    assert err < 0.02
    # the float trace is the simulator's: same outputs as spikemfm.simulate
    assert torch.equal(flt.outputs, spikemfm.simulate(small_snn, x, 24).outputs)


def test_part_and_export_errors(small_snn):
    with pytest.raises(ConfigError, match="Part.kind"):
        Part("head")
    with pytest.raises(ConfigError, match="has 2 blocks"):
        reference_float(small_snn, Part("block", 5), engine.as_inputs(small_snn.graph, torch.randn(1, 3, 8, 8)), 2)
    with pytest.raises(ConfigError, match="precision"):
        export_lava(small_snn, torch.randn(1, 3, 8, 8), precision="double")


def test_import_spikemfm_does_not_import_lava():
    import subprocess
    import sys

    code = "import sys, spikemfm, spikemfm.neuromorphic; print(any(m.startswith('lava') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

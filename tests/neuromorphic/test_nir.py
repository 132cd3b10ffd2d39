"""NIR export: written, read back by nir, imported and run by norse, restored exactly by spikemfm."""
import numpy as np
import pytest
import torch

from spikemfm.convert import ConvertConfig, QuantConfig, quantize
from spikemfm.snn import convert
from spikemfm.errors import ConfigError
from spikemfm.ir import engine
from spikemfm.neuromorphic.parts import Part, reference_float
from spikemfm.neuromorphic.nir_export import export_nir, read_nir_layers


@pytest.fixture(scope="module")
def snn(tiny_clip, fmnist_test):
    x, _ = fmnist_test.subset(64, 1).tensors()
    return convert(quantize(tiny_clip.visual, QuantConfig(bits=8), [x]), ConvertConfig(max_spikes_per_step=1))


def _nir_if_reference(graph, spikes):
    """NIR's own equations, evaluated directly: v ← v + W·s; z = [v > θ]; v ← v_reset where z."""
    lin = next(n for k, n in graph.nodes.items() if k.endswith("fc1"))
    neuron = next(n for k, n in graph.nodes.items() if k.endswith("mlp.hidden"))
    v, out = np.zeros(lin.weight.shape[0]), []
    for s in spikes:
        v = v + lin.weight @ s
        z = v > neuron.v_threshold
        v = np.where(z, neuron.v_reset, v)
        out.append(z.astype(np.float64))
    return np.stack(out)


def test_mlp_subgraph_round_trips_and_runs_in_norse(snn, fmnist_test, tmp_path):
    import nir
    import norse.torch as norse
    from norse.torch.functional import reset

    path = tmp_path / "mlp0.nir"
    export_nir(snn, block=0, subgraph="mlp", path=path)
    graph = nir.read(str(path))
    assert {type(n).__name__ for n in graph.nodes.values()} == {"Input", "Linear", "IF", "Output"}
    # stimulus: the real spikes of block 0's MLP input neurons (binary, signed) for token 1 of a test image
    x = engine.as_inputs(snn.graph, fmnist_test.subset(1, 3).tensors()[0])
    spikes = reference_float(snn, Part("mlp", 0), x, 12).spikes["blocks.0.mlp.in"][:, 0, 1].double().numpy()
    assert np.abs(spikes).sum() > 0 and spikes.min() < 0
    module = norse.from_nir(graph, dt=1.0, reset_method=reset.reset_value)
    state, got = None, []
    with torch.no_grad():
        for s in spikes:
            z, state = module(torch.from_numpy(s).float()[None], state)
            got.append(z[0].double().numpy())
    want = _nir_if_reference(graph, spikes)
    assert want.sum() > 0  # the stimulus makes the layer fire
    np.testing.assert_array_equal(np.stack(got), want)


def test_spikemfm_metadata_restores_the_exact_layers(snn, tmp_path):
    path = tmp_path / "qkv1.nir"
    export_nir(snn, block=1, subgraph="qkv", path=path)
    layers = read_nir_layers(path)
    assert [layer.neuron for layer in layers] == [f"blocks.1.attn.{n}" for n in "qkv"]
    for layer in layers:
        ql, q = snn.qparams.linears[layer.linear], snn.qparams.quants[layer.neuron]
        np.testing.assert_array_equal(layer.w_int, ql.w_int.numpy())
        np.testing.assert_array_equal(layer.out_scale, ql.out_scale.numpy())
        np.testing.assert_array_equal(layer.bias, ql.bias.numpy())
        assert (layer.step, layer.lo, layer.hi) == (q.step, q.lo, q.hi)


def test_nir_errors(snn, tmp_path):
    with pytest.raises(ConfigError, match="NIR can express"):
        export_nir(snn, subgraph="softmax")
    with pytest.raises(ConfigError, match="has 4 blocks"):
        export_nir(snn, block=9)
    with pytest.raises(ConfigError, match="does not exist"):
        read_nir_layers(tmp_path / "missing.nir")


def _leaky_reference(graph, spikes, beta):
    """What snntorch's ``import_from_nir`` builds for a NIR IF node (snntorch 1.0): ``Leaky(beta=0.9)`` with a
    subtractive reset — v ← β·v + W·s; z = [v > θ]; v ← v − θ·z — evaluated directly."""
    lin = next(n for k, n in graph.nodes.items() if k.endswith("fc1"))
    theta = float(np.unique(next(n for k, n in graph.nodes.items() if k.endswith("mlp.hidden")).v_threshold)[0])
    v, out = np.zeros(lin.weight.shape[0], np.float32), []
    for s in spikes:
        v = beta * v + (lin.weight @ s).astype(np.float32)
        z = v > theta
        out.append(z.astype(np.float64))
        v = v - theta * z
    return np.stack(out)


def test_mlp_subgraph_runs_in_snntorch(snn, fmnist_test, tmp_path):
    """snntorch reads the same file. As imported, its IF is a leaky neuron (β = 0.9, subtractive reset): its spikes
    equal those equations, not NIR's IF; with β = 1 and a reset to zero (snntorch's own parameters) they equal NIR's
    IF exactly."""
    import nir
    import snntorch
    from snntorch.import_nir import import_from_nir

    path = tmp_path / "mlp0.nir"
    export_nir(snn, block=0, subgraph="mlp", path=path)
    graph = nir.read(str(path))
    x = engine.as_inputs(snn.graph, fmnist_test.subset(1, 3).tensors()[0])
    spikes = reference_float(snn, Part("mlp", 0), x, 12).spikes["blocks.0.mlp.in"][:, 0, 1].double().numpy()
    net = import_from_nir(graph)
    leaky = [m for m in net.modules() if isinstance(m, snntorch.Leaky)]
    assert len(leaky) == 1

    def run() -> np.ndarray:
        leaky[0].reset_mem()
        got = []
        with torch.no_grad():
            for s in spikes:
                out, _ = net(torch.from_numpy(s).float()[None])
                got.append((out[0] if isinstance(out, tuple) else out)[0].double().numpy())
        return np.stack(got)

    as_imported = run()
    np.testing.assert_array_equal(as_imported, _leaky_reference(graph, spikes, 0.9))
    assert (as_imported != _nir_if_reference(graph, spikes)).any()  # the import is not NIR's IF
    leaky[0].beta, leaky[0].reset_mechanism = torch.tensor(1.0), "zero"
    want = _nir_if_reference(graph, spikes)
    assert want.sum() > 0
    np.testing.assert_array_equal(run(), want)

"""NIR export of the parts of a converted block that NIR can express: synaptic layer → IF neurons.

NIR (1.0) has no attention, softmax, LayerNorm or lookup-table primitive, and its IF neuron is
unsigned (fires on v > v_threshold, resets to v_reset). So the export covers the spiking linear
stages of a block — ``qkv`` (input spikes → Q, K, V projections → IF) and ``mlp`` (input spikes →
fc1 → IF) — as ``Input → Linear → IF → Output`` graphs. Each edge carries, per time step:

    current  I[t] = W · s[t],  W = W_int · out_scale  (s: the input layer's signed spikes)
    neuron   v ← v + I[t];  z = [v > θ];  v ← v_reset  (NIR's IF, θ = the quantization step)

What NIR cannot say about spikemfm's neuron (negative spikes, bounded count [lo, hi], V₀ = θ/2,
reset by subtraction, the synaptic bias delivered once, at most B spikes per step) travels in each
node's ``metadata["spikemfm"]`` with the exact integer weights, so :func:`read_nir_layers` restores
the exact layers; another framework running the graph runs NIR's IF, an approximation of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spikemfm.snn.model import SpikingModel
from spikemfm.errors import ConfigError
from spikemfm.core.io import atomic_path
from spikemfm.ir import nodes as N
from spikemfm.ir.netlist import build_netlist

SUBGRAPHS = ("qkv", "mlp")


def _stages(snn: SpikingModel, block: int, subgraph: str) -> tuple[str, list[tuple[str, str]]]:
    """(input neuron point, [(Linear path, output neuron point)]) of an exportable subgraph."""
    if subgraph not in SUBGRAPHS:
        raise ConfigError(f"export_nir: subgraph={subgraph!r}; NIR can express {SUBGRAPHS}")
    if not 0 <= block < len(snn.graph.blocks):
        raise ConfigError(f"export_nir: block={block}; {snn.graph.name} has {len(snn.graph.blocks)} blocks")
    b = snn.graph.blocks[block]
    if subgraph == "mlp" and b.mlp.gate is not None:
        raise ConfigError(f"export_nir: {b.mlp.path} is a gated MLP: its elementwise spike product has no NIR "
                          "primitive; export subgraph='qkv'")
    src = b.attn.point(N.Role.ATTN_IN) if subgraph == "qkv" else b.mlp.point(N.Role.MLP_IN)
    net = build_netlist(snn.graph)  # the synaptic layers the input neuron layer drives, and their neurons
    # plain strings: NIR writes names and metadata through h5py, which takes no str subclass
    return str(src), [(str(syn.name), str(net.consumers(syn.name)[0].name)) for syn in net.consumers(src)]


def export_nir(snn: SpikingModel, block: int = 0, subgraph: str = "mlp", path: str | Path | None = None) -> Any:
    """The NIR graph of ``subgraph`` of ``block``; written to ``path`` (HDF5, atomically) when given."""
    import nir

    src, stages = _stages(snn, block, subgraph)
    qp = snn.qparams
    width = qp.linears[stages[0][0]].w_int.shape[1]
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array([width]))}
    edges: list[tuple[str, str]] = []
    for lin_path, point in stages:
        ql, q = qp.linears[lin_path], qp.quants[point]
        n = ql.w_int.shape[0]
        lin_meta = {"w_int": ql.w_int.numpy(), "out_scale": ql.out_scale.numpy(), "weight_bits": ql.bits,
                    "bias_once": (ql.bias if ql.bias is not None else ql.out_scale * 0).numpy(), "source": src}
        lo, hi = snn.neuron_model.bounds(q)  # the model's neuron law (signed_if, or the naive unsigned_if)
        law = "signed_bounded_if" if snn.config.neuron == "signed_if" else snn.config.neuron
        if_meta = {"neuron": law, "step": q.step, "lo": lo, "hi": hi, "bits": q.bits,
                   "v_init": q.step / 2, "reset": "subtract",
                   "max_spikes_per_step": -1 if snn.config.max_spikes_per_step is None else snn.config.max_spikes_per_step}
        nodes[lin_path] = nir.Linear(weight=(ql.w_int * ql.out_scale[:, None]).numpy(), metadata={"spikemfm": lin_meta})
        nodes[point] = nir.IF(r=np.ones(n), v_threshold=np.full(n, q.step), v_reset=np.zeros(n),
                              metadata={"spikemfm": if_meta})
        nodes[f"output.{point}"] = nir.Output(output_type=np.array([n]))
        edges += [("input", lin_path), (lin_path, point), (point, f"output.{point}")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikemfm": {"model": snn.graph.name, "block": block,
                                                                          "subgraph": subgraph}})
    if path is not None:
        with atomic_path(Path(path)) as tmp:
            nir.write(str(tmp), graph)
    return graph


@dataclass(frozen=True)
class NirLayer:
    """One exact spikemfm layer restored from NIR metadata."""

    linear: str
    neuron: str
    w_int: np.ndarray
    out_scale: np.ndarray
    bias: np.ndarray
    step: float
    lo: int
    hi: int


def read_nir_layers(path: str | Path) -> list[NirLayer]:
    """Reads a file from :func:`export_nir` back into exact spikemfm layers."""
    import nir

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"read_nir_layers: {path} does not exist; write it with spikemfm.export_nir(..., path=)")
    graph = nir.read(str(path))
    layers = []
    for src, dst in graph.edges:
        node = graph.nodes[src]
        meta = node.metadata.get("spikemfm") if isinstance(node, nir.Linear) else None
        if meta is None:
            continue
        nmeta = graph.nodes[dst].metadata.get("spikemfm")
        if nmeta is None:
            raise ConfigError(f"read_nir_layers: {path}: node {dst!r} has no spikemfm metadata; not written by export_nir")
        layers.append(NirLayer(src, dst, np.asarray(meta["w_int"]), np.asarray(meta["out_scale"]),
                               np.asarray(meta["bias_once"]), float(nmeta["step"]), int(nmeta["lo"]), int(nmeta["hi"])))
    return layers

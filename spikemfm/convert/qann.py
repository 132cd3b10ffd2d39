"""The quantized ANN (QANN): calibration, integer parameters, and its forward ops."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from spikemfm.convert.config import QuantConfig
from spikemfm.convert.mixed import BitAllocation, MixedPrecisionConfig, allocate
from spikemfm.convert.quantizers import calibrate_step, make_qlinear
from spikemfm.quant import exact
from spikemfm.quant.params import ActQuant, QParams, signed_range
from spikemfm.convert.sensitivity import Calibration, Sensitivity, measure_sensitivity
from spikemfm.errors import ConfigError
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.ir import units
from spikemfm.ir.units.product import Product
from spikemfm.ir.extract import extract
from spikemfm.ir.fidelity import Fidelity, check_fidelity
from spikemfm.ir.netlist import Lookup, NeuronLayer, SpikeProduct, SynapticLayer, build_netlist
from spikemfm.ir.engine import DirectUnits
from spikemfm.ir.float_ops import FloatOps

_RESERVOIR = 1 << 18  # calibration samples kept per quantization point


class _Reservoir:
    """Keeps a bounded random sample of every observed tensor, per quantization point."""

    def __init__(self, seed: int = 0) -> None:
        self.samples: dict[str, list[torch.Tensor]] = {}
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, point: str, x: torch.Tensor) -> None:
        flat = x.detach().flatten().to(torch.float64)
        if flat.numel() > _RESERVOIR // 4:
            flat = flat[torch.randint(0, flat.numel(), (_RESERVOIR // 4,), generator=self.gen)]
        self.samples.setdefault(point, []).append(flat)

    def get(self, point: str) -> torch.Tensor:
        parts = self.samples.get(point)
        if not parts:
            raise ConfigError(f"calibration never reached quantization point {point!r}")
        x = torch.cat(parts)
        return x[torch.randperm(x.numel(), generator=self.gen)[:_RESERVOIR]] if x.numel() > _RESERVOIR else x


def _act_quant(point: N.Point, res: _Reservoir | None, cfg: QuantConfig,
               steps: Mapping[str, float] | None = None) -> ActQuant:
    bits = cfg.act_bits(point)
    if point.role.unsigned:  # softmax output in [0, 1]: unsigned levels, fixed step
        hi = 2 ** bits - 1
        return ActQuant(point, 1.0 / hi, 0, hi, bits)
    lo, hi = signed_range(bits)
    if steps is not None and point in steps:  # learned (QAT) instead of calibrated
        return ActQuant(point, float(steps[point]), lo, hi, bits)
    return ActQuant(point, calibrate_step(res.get(point), lo, hi, cfg.clip, cfg.percentile), lo, hi, bits)


def build_qparams(graph: N.EncoderGraph, res: _Reservoir | None, cfg: QuantConfig,
                  steps: Mapping[str, float] | None = None) -> QParams:
    """Quantizes every Linear and every spiking activation of a float64 graph, iterating its netlist.

    ``steps``: activation steps by quantization point that replace calibration (quantization-aware training);
    with every signed point given, ``res`` may be None.
    """
    qp = QParams()
    net = build_netlist(graph)
    linears = {lin.path: lin for lin in N.find_nodes(graph, N.Linear)}
    q = qp.quants
    for r in net:  # in execution order: the reservoir is sampled in the same order as always
        if isinstance(r, NeuronLayer):
            if r.name not in q:  # an activation neuron is quantized with its lookup, just before
                q[r.name] = _act_quant(r.point, res, cfg, steps)
        elif isinstance(r, SynapticLayer):
            lin = linears[r.name]
            qp.linears[r.name] = make_qlinear(lin, q[r.pre].step, cfg.weight_row_bits(r.name, lin.weight.shape[0]))
        elif isinstance(r, SpikeProduct):  # Q·Kᵀ/√d, A·V, or a gated MLP's act(gate) ⊙ value (keyed by its owner)
            scale = q[r.inputs[0]].step * q[r.inputs[1]].step * units.product_kind(r.kind).float_scale(r.node)
            getattr(qp, units.product_kind(r.kind).scales)[r.owner] = scale
        elif isinstance(r, Lookup):
            hid = q[r.inputs[0]]
            levels = torch.arange(hid.lo, hid.hi + 1, dtype=torch.float64)
            out = net.consumers(r.name)[0]  # the activation neuron the lookup drives
            q[out.name] = _act_quant(out.point, res, cfg, steps)
            qp.luts[r.owner] = q[out.name].level(N.activation(r.act, levels * hid.step))
    return qp


class QANNOps(DirectUnits):
    """Integer QANN semantics: each neuron is its quantizer, each synaptic layer an exact integer matmul.

    Integer products are exact (:mod:`spikemfm.quant.exact`); scales, biases and the float units run
    in ``dtype`` (the QANN's precision).
    """

    def __init__(self, qp: QParams, dtype: torch.dtype = torch.float64) -> None:
        self.qp = qp
        self.dtype = dtype
        self.weights: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    def inject(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def neuron(self, point: str, x: torch.Tensor) -> torch.Tensor:
        return self.qp.quants[point].level(x)

    def linear(self, node: N.Linear, c: torch.Tensor) -> torch.Tensor:
        ql = self.qp.linears[node.path]
        hi = float(c.abs().amax()) if c.numel() else 0.0  # the representation only affects speed, never values
        kind = exact.weight_dtype(ql.w_int, hi, hi)
        w = self.weights.get((node.path, kind))
        if w is None:
            w = self.weights[(node.path, kind)] = ql.w_int.T.to(kind).contiguous()
        acc = exact.matmul(c.reshape(-1, c.shape[-1]), w).reshape(*c.shape[:-1], -1)
        return ql.affine(acc, self.dtype)

    def product(self, node: Product, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The exact integer product of the levels, scaled in the QANN's precision."""
        kind = units.product_kind(node)
        x, y = kind.operands(a, b)
        exact_xy = exact.elementwise(x, y) if kind.elementwise else \
            exact.product(x, y, self.qp.product_bound(*node.points, x.shape[-1]))
        return exact_xy.to(self.dtype) * kind.level_scale(self.qp, node)

    def activation(self, mlp: N.MLP, z: torch.Tensor) -> torch.Tensor:
        c = self.neuron(mlp.point(N.Role.HIDDEN), z)
        return self.qp.luts[mlp.path].to(self.dtype)[(c - self.qp.quants[mlp.point(N.Role.HIDDEN)].lo).long()]


class QuantizedModel:
    """A QANN: the tower's graph (float64) with integer weights and calibrated activation steps.

    ``forward(x)`` returns the QANN output (in ``config.precision``); ``float_forward(x)`` the float64
    float reference.
    ``allocation``: the mixed-precision bit allocation it was built from (None for uniform bits).
    ``fidelity``: how closely the extracted float graph reproduced the user's module on the first calibration
    batch (:mod:`spikemfm.ir.fidelity`; None when quantized from a graph or a pruned model).

    A plain object, not an ``nn.Module``: it holds no trainable parameters (integer weights and calibrated steps
    live in ``qparams``, float64 tensors of the graph are constants), so nothing would register them.
    """

    def __init__(self, graph: N.EncoderGraph, qparams: QParams, config: QuantConfig,
                 allocation: BitAllocation | None = None, fidelity: Fidelity | None = None) -> None:
        self.graph = graph
        self.qparams = qparams
        self.config = config
        self.allocation = allocation
        self.fidelity = fidelity

    @torch.no_grad()
    def forward(self, x: Any) -> torch.Tensor:
        dtype = self.config.dtype
        inputs = engine.as_inputs(self.graph, x)
        with exact.exact_matmuls(inputs.device):  # no TF32 on CUDA: the integer products must stay exact
            return engine.run(self.graph, inputs, QANNOps(self.qparams, dtype), dtype)

    __call__ = forward

    @torch.no_grad()
    def float_forward(self, x: Any) -> torch.Tensor:
        """Unquantized float64 output of the same graph."""
        return engine.run(self.graph, engine.as_inputs(self.graph, x), FloatOps(), torch.float64)


def as_graph(model: nn.Module | N.EncoderGraph, batch: Any = None) -> N.EncoderGraph:
    """The graph of a tower: extracted from a supported module, or the ``graph`` of a pruned model.

    A graph extracted from a module is checked against it on ``batch`` (:func:`check_fidelity`): an
    extraction that does not reproduce the module raises :class:`~spikemfm.errors.FidelityError`.
    """
    return graph_and_fidelity(model, batch)[0]


def graph_and_fidelity(model: nn.Module | N.EncoderGraph,
                       batch: Any = None) -> tuple[N.EncoderGraph, Fidelity | None]:
    """:func:`as_graph` and the fidelity measured (None for a graph or a pruned model, or without a batch)."""
    if isinstance(model, N.EncoderGraph):
        return model, None
    if isinstance(getattr(model, "graph", None), N.EncoderGraph):
        return model.graph, None
    graph = extract(model)
    return graph, None if batch is None else check_fidelity(model, graph, batch)


@dataclass
class Analysis:
    """Calibration statistics and measured sensitivity of a tower, reusable across budgets."""

    graph: N.EncoderGraph
    calibration: Calibration
    sensitivity: Sensitivity | None
    fidelity: Fidelity | None = None


def _calibrate(model: nn.Module | N.EncoderGraph, calib_batches: Iterable[Any], max_batches: int, keep: int,
               progress: bool) -> tuple[N.EncoderGraph, Calibration, Fidelity | None]:
    batches = iter(calib_batches)
    first = next(batches, None)
    if first is None:
        raise ConfigError("quantize: calib_batches yielded no batch; pass real calibration data")
    graph, fidelity = graph_and_fidelity(model, first)
    graph = N.float64_copy(graph)
    cal = Calibration(_Reservoir(), [])
    seen = 0
    with torch.no_grad():
        for batch in tqdm(itertools.chain([first], batches), desc="calibrate", disable=not progress,
                          total=max_batches):
            x = engine.as_inputs(graph, batch)
            observe = cal.reservoir if keep == 0 else \
                (lambda p, t, n=x.batch_size: (cal.reservoir(p, t), cal.observe_moments(p, t, n)))
            engine.run(graph, x, FloatOps(observe=observe), torch.float64)
            if seen < keep:
                cal.batches.append(x)
            seen += 1
            if seen >= max_batches:
                break
    return graph, cal, fidelity


def analyze(model: nn.Module | N.EncoderGraph, config: MixedPrecisionConfig, calib_batches: Iterable[Any],
            progress: bool = False) -> Analysis:
    """Calibrates ``model`` and measures its quantization sensitivity at every level (for several budgets)."""
    graph, cal, fid = _calibrate(model, calib_batches, config.max_calib_batches, config.sensitivity_batches,
                                 progress)
    return Analysis(graph, cal, measure_sensitivity(graph, cal, config.candidates, config.clip, _act_quant,
                                                    config.outlier_fraction, config.outlier_share, progress), fid)


def _smoothed_calibration(model: nn.Module | N.EncoderGraph, config: QuantConfig, calib_batches: Iterable[Any],
                          progress: bool) -> tuple[N.EncoderGraph, _Reservoir, Fidelity | None]:
    """Channel ranges on the extracted graph, the smoothed graph (:mod:`spikemfm.convert.smooth`), then the
    activation steps calibrated on it (the same batches twice; the fidelity guard checks the unsmoothed graph)."""
    from spikemfm.convert.smooth import channel_ranges, smooth

    batches = list(itertools.islice(iter(calib_batches), config.max_calib_batches))
    if not batches:
        raise ConfigError("quantize: calib_batches yielded no batch; pass real calibration data")
    graph, fid = graph_and_fidelity(model, batches[0])
    graph = N.float64_copy(graph)
    graph = smooth(graph, channel_ranges(graph, batches), config.smooth)
    graph, cal, _ = _calibrate(graph, batches, config.max_calib_batches, 0, progress)
    return graph, cal.reservoir, fid


def quantize(model: nn.Module | N.EncoderGraph, config: QuantConfig | MixedPrecisionConfig,
             calib_batches: Iterable[Any] = (), progress: bool = False,
             analysis: Analysis | None = None) -> QuantizedModel:
    """Builds a QANN from a float tower.

    Args:
        model: a supported tower (see :func:`spikemfm.ir.extract`), a pruned model, or an extracted graph.
        config: uniform bits (:class:`QuantConfig`) or a budget (:class:`MixedPrecisionConfig`), whose
            bits per layer are chosen from measured sensitivity (report: ``QuantizedModel.allocation``).
        calib_batches: iterable of input batches (image tensors, token ids or tokenizer outputs) of
            real data; at most ``config.max_calib_batches`` are used.
        progress: show progress bars.
        analysis: a previous :func:`analyze` of the same model (reused instead of calibrating again).
    """
    if not isinstance(config, (QuantConfig, MixedPrecisionConfig)):
        raise ConfigError(f"quantize: config must be a QuantConfig or MixedPrecisionConfig, got {type(config).__name__}")
    if isinstance(config, MixedPrecisionConfig):
        analysis = analysis or analyze(model, config, calib_batches, progress)
        alloc = allocate(analysis.sensitivity, config)
        qcfg = alloc.quant_config()
        return QuantizedModel(analysis.graph, build_qparams(analysis.graph, analysis.calibration.reservoir, qcfg),
                              qcfg, alloc, analysis.fidelity)
    if analysis is not None:
        graph, res, fid = analysis.graph, analysis.calibration.reservoir, analysis.fidelity
    elif config.smooth is not None:
        graph, res, fid = _smoothed_calibration(model, config, calib_batches, progress)
    else:
        graph, cal, fid = _calibrate(model, calib_batches, config.max_calib_batches, 0, progress)
        res = cal.reservoir
    return QuantizedModel(graph, build_qparams(graph, res, config), config, fidelity=fid)

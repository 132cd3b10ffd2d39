"""``export_lava``: the Lava process graph of a converted block, sub-block or whole tower.

The graph is built from the model's typed netlist (:mod:`spikemfm.ir.netlist`), one process per record of the
part (neuron layer, synaptic layer, spike×spike product, float unit, residual add, pooling; a lookup and
the activation neuron it drives become one ``LutIF``), wired along the netlist's edges. The part's input stream
comes from a Lava ``RingBuffer`` source; its output and (optionally) every neuron layer's spikes are
written by probes. Lava is imported here, never by ``import spikemfm``.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from spikemfm.snn.model import SpikingModel
from spikemfm.errors import ConfigError
from spikemfm.ir import engine
from spikemfm.ir import nodes as N
from spikemfm.ir import units
from spikemfm.ir.units.softmax import Softmax
from spikemfm.neuromorphic.fixed import FixedParams, FixedPointConfig, fixed_params
from spikemfm.ir import netlist as nl
from spikemfm.neuromorphic.parts import Part, Trace, part_records, step_inputs

PRECISIONS = ("floating_pt", "fixed_pt")


def _lava():
    try:
        from lava.proc.io.source import RingBuffer
        from spikemfm.neuromorphic.lava import process
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("spikemfm.export_lava needs lava-nc; run `bash scripts/setup.sh` (it installs and "
                          f"patches lava-nc 0.10.0): {exc}") from exc
    return RingBuffer, process


class _Port(NamedTuple):
    port: Any
    shape: tuple[int, ...]


def _np(x: torch.Tensor | None) -> np.ndarray | None:
    return None if x is None else x.detach().cpu().numpy()


class _Builder:
    """Creates and wires the processes of one part; float and fixed parameters on every process."""

    def __init__(self, snn: SpikingModel, fxp: FixedParams, probe_dir: Path | None, steps: int) -> None:
        self.snn, self.qp, self.fxp = snn, snn.qparams, fxp
        self.net, self.law = snn.netlist, snn.neuron_model
        self.qk_norms = {n.path for a in N.find_nodes(snn.graph, N.Attention) for n in (a.q_norm, a.k_norm) if n}
        self.probe_dir, self.steps = probe_dir, steps
        self.own_dir: Path | None = None
        self.B = snn.config.max_spikes_per_step
        _, self.P = _lava()
        self.processes: list[Any] = []
        self.probes: dict[str, Path] = {}

    def _add(self, proc: Any) -> Any:
        self.processes.append(proc)
        return proc

    def _probe(self, point: str) -> str | None:
        if self.probe_dir is None:
            return None
        self.probes[point] = self.probe_dir / f"{len(self.probes):03d}.npy"
        return str(self.probes[point])

    def build(self, rec: nl.Record, ports: dict[str, _Port], inputs: engine.Inputs, fixed: bool) -> _Port | None:
        """The process(es) of one netlist record, wired to the ports of the records feeding it (None: a
        :class:`~spikemfm.ir.netlist.Lookup`, which the activation neuron after it implements)."""
        if isinstance(rec, nl.Lookup):
            return None
        if isinstance(rec, nl.Constant):
            raise ConfigError(f"export_lava: {rec.name} is a learned constant current (attention pooling's latent "
                              "query), which the Lava builder does not source yet; export a block "
                              "(--part block/mlp/attention) instead of the whole tower")
        if isinstance(rec, nl.NeuronLayer):
            src = self.net[rec.inputs[0]]
            if isinstance(src, nl.Lookup):  # lookup + act neuron = one LutIF on the hidden neuron's spikes
                return self.lut_neuron(rec, src, ports[src.inputs[0]], fixed)
            return self.neuron(rec.point, ports[rec.inputs[0]])
        if isinstance(rec, nl.SynapticLayer):
            return self.synapse(rec.name, ports[rec.pre], fixed)
        if isinstance(rec, nl.SpikeProduct):
            return self.product(rec, ports[rec.inputs[0]], ports[rec.inputs[1]])
        if isinstance(rec, nl.FloatUnit):
            return self.float_unit(rec, ports[rec.inputs[0]], inputs)
        if isinstance(rec, nl.ResidualAdd):
            return self.add(ports[rec.inputs[0]], ports[rec.inputs[1]], rec.name)
        if isinstance(rec, nl.Pool):
            return self.pool(self.snn.graph.readout, ports[rec.inputs[0]], inputs)
        raise ConfigError(f"export_lava: no Lava process for netlist record {rec.name!r} ({type(rec).__name__})")

    def neuron(self, point: N.Point, h: _Port) -> _Port:
        q = self.qp.quants[point]
        lo, hi = self.law.bounds(q)
        n = self._add(self.P.SignedIF(shape=h.shape, step=q.step, theta=self.fxp.theta[point], lo=lo, hi=hi,
                                      max_spikes=self.B, probe=self._probe(point), steps=self.steps, name=point))
        h.port.connect(n.a_in)
        return _Port(n.s_out, h.shape)

    def lut_neuron(self, rec: nl.NeuronLayer, lookup: nl.Lookup, h: _Port, fixed: bool) -> _Port:
        lut = self.law.clamp_levels(self.qp.quants[rec.point], self.qp.luts[lookup.owner])
        lut = _np(lut.to(torch.int64)) if fixed else _np(lut)
        n = self._add(self.P.LutIF(shape=h.shape, lut=lut, lo_in=self.qp.quants[lookup.inputs[0]].lo,
                                   max_spikes=self.B, probe=self._probe(rec.point), steps=self.steps, name=rec.point))
        h.port.connect(n.s_in)
        return _Port(n.s_out, h.shape)

    def synapse(self, path: str, h: _Port, fixed: bool) -> _Port:
        ql = self.qp.linears[path]
        w = _np(ql.w_int.to(torch.int64)) if fixed else _np(ql.w_int)
        s = self._add(self.P.SpikeSynapse(in_shape=h.shape, weights=w, out_scale=_np(ql.out_scale),
                                          bias=_np(ql.bias), gain=_np(self.fxp.gain[path]),
                                          offset=_np(self.fxp.offset[path]),
                                          gain_shift=self.fxp.cfg.gain_shift, name=path))
        h.port.connect(s.s_in)
        return _Port(s.a_out, (*h.shape[:-1], ql.w_int.shape[0]))

    def product(self, rec: nl.SpikeProduct, ha: _Port, hb: _Port) -> _Port:
        """A spike×spike product's process (its kind's ``lava_kind``), or the refusal its kind declares."""
        kind = units.product_kind(rec.kind)
        if kind.lava is not None:
            raise ConfigError(f"export_lava: {rec.name} is a {kind.name} product: {kind.lava}")
        b, n, _ = hb.shape  # operands arrive token-major (B, N, D); the process splits the heads
        out = (b, rec.heads, n, n) if kind.lava_kind == "qk" else hb.shape
        p = self._add(self.P.SpikeProduct(kind=kind.lava_kind, a_shape=ha.shape, b_shape=hb.shape, out_shape=out,
                                          heads=rec.heads, scale=getattr(self.qp, kind.scales)[rec.owner],
                                          gain=int(self.fxp.gain[rec.name]), gain_shift=self.fxp.cfg.gain_shift,
                                          name=rec.name))
        ha.port.connect(p.a_in)
        hb.port.connect(p.b_in)
        return _Port(p.a_out, out)

    def float_unit(self, rec: nl.FloatUnit, h: _Port, inputs: engine.Inputs) -> _Port:
        """A float unit's process: its kind's own Lava process (softmax, LayerNorm), else the refusal its kind
        declares (:attr:`spikemfm.ir.units.base.UnitKind.lava`)."""
        kind = units.kind_of(rec.node)
        if rec.name in self.qk_norms:
            raise ConfigError(f"export_lava: {rec.name} is a per-head qk-norm, which the Lava builder does not "
                              "wire yet (its LayerNorm process normalises whole token rows)")
        if kind.lava is not None:
            raise ConfigError(f"export_lava: {rec.name} is a {kind.name} unit: {kind.lava}")
        params = self.fxp.unit_params(rec.node)
        if isinstance(rec.node, Softmax):
            mask = engine.attention_mask(self.snn.graph, inputs, h.shape[-1])
            m = None if mask is None else np.broadcast_to(_np(mask), h.shape).copy()
            proc = self.P.Softmax(shape=h.shape, mask=m, exp_lut=_np(params["exp_lut"]), log2e=params["log2e"],
                                  frac_bits=self.fxp.cfg.frac_bits, name=rec.name)
        elif isinstance(rec.node, N.LayerNorm):  # its own NumPy models: an independent check of the integer form
            n = rec.node
            proc = self.P.LayerNormUnit(shape=h.shape, weight=_np(n.weight.double()), bias=_np(n.bias.double()),
                                        eps=n.eps, w_fx=_np(params["w"]), b_fx=_np(params["b"]), eps_fx=params["eps"],
                                        name=rec.name)
        else:  # any other kind: the generic process runs the kind's own float / integer semantics
            proc = self.P.FloatUnit(shape=h.shape, kind=kind.name, node=rec.node, params=params,
                                    frac_bits=self.fxp.cfg.frac_bits, name=rec.name)
        self._add(proc)
        h.port.connect(proc.a_in)
        return _Port(proc.a_out, h.shape)

    def add(self, ha: _Port, hb: _Port, name: str) -> _Port:
        r = self._add(self.P.ResidualAdd(shape=ha.shape, name=name))
        ha.port.connect(r.a_in)
        hb.port.connect(r.b_in)
        return _Port(r.a_out, ha.shape)

    def pool(self, r: N.Readout, h: _Port, inputs: engine.Inputs) -> _Port:
        """Token pooling: the process runs :func:`spikemfm.ir.units.pool.pool_tokens` on the batch's ids / mask."""
        p = self._add(self.P.TokenPool(in_shape=h.shape, kind=r.pool, prefix_tokens=r.prefix_tokens, eos_id=r.eos_id,
                                       ids=_np(inputs.ids), mask=_np(inputs.mask), name=r.pool_name))
        h.port.connect(p.a_in)
        return _Port(p.a_out, (h.shape[0], h.shape[-1] * (r.prefix_tokens if r.pool == "concat_prefix" else 1)))

    def output(self, h: _Port) -> Path:
        if self.probe_dir is None:  # removed by LavaNetwork.run once read
            self.own_dir = Path(tempfile.mkdtemp(prefix="spikemfm-lava-"))
        path = (self.probe_dir or self.own_dir) / "output.npy"
        self._add(self.P.StreamProbe(shape=h.shape, probe=str(path), steps=self.steps, name="output"))
        h.port.connect(self.processes[-1].a_in)
        return path


def _wire(bd: _Builder, part: Part, source: _Port, inputs: engine.Inputs, fixed: bool) -> _Port:
    """Creates one process per netlist record of ``part``, in execution order; the stream entering the part
    comes from ``source``."""
    records = part_records(bd.net, bd.snn.graph, part)
    inside = {r.name for r in records}
    ports: dict[str, _Port] = {}
    for rec in records:
        for name in rec.inputs:
            if name not in inside:
                ports.setdefault(name, source)  # the residual stream entering the part
        port = bd.build(rec, ports, inputs, fixed)
        if port is not None:
            ports[rec.name] = port
    return ports[records[-1].name]


@dataclass
class LavaRun:
    """Outcome of :meth:`LavaNetwork.run`: the trace, wall times and steps per second."""

    trace: Trace
    startup_s: float
    run_s: float
    steps_per_s: float


@dataclass
class LavaNetwork:
    """A built Lava process graph of one part, ready to run for ``timesteps`` steps."""

    part: Part
    precision: str
    timesteps: int
    source: Any
    processes: list[Any]
    output_path: Path
    probes: dict[str, Path] = field(default_factory=dict)
    own_dir: Path | None = None  # a temp folder of the output probe (no probe_dir given), removed after run()

    @property
    def num_processes(self) -> int:
        return len(self.processes) + 1

    def run(self) -> LavaRun:
        """Runs the graph with ``Loihi2SimCfg``: 1 step (compile + start), then the rest (timed)."""
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg

        cfg = Loihi2SimCfg(select_tag=self.precision)
        t0 = time.perf_counter()
        # one BLAS thread per Lava process (forked children inherit it): dozens of processes share the cores
        limits = threadpool_limits(1)
        try:
            self.source.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
            t1 = time.perf_counter()
            if self.timesteps > 1:
                self.source.run(condition=RunSteps(num_steps=self.timesteps - 1), run_cfg=cfg)
            t2 = time.perf_counter()
            outputs = torch.from_numpy(np.load(self.output_path))
            spikes = {k: torch.from_numpy(np.load(p)).to(torch.int64) for k, p in self.probes.items()}
        finally:
            self.source.stop()
            limits.restore_original_limits()
            if self.own_dir is not None:
                shutil.rmtree(self.own_dir, ignore_errors=True)
        rate = (self.timesteps - 1) / (t2 - t1) if self.timesteps > 1 and t2 > t1 else float("nan")
        return LavaRun(Trace(outputs, spikes), t1 - t0, t2 - t1, rate)


def export_lava(snn: SpikingModel, inputs: Any, part: Part | None = None, timesteps: int = 32,
                precision: str = "floating_pt", fixed: FixedPointConfig | None = None,
                probe_dir: str | Path | None = None, steps_per_frame: int | None = None) -> LavaNetwork:
    """Builds the Lava process graph of ``part`` of a converted tower, fed by ``inputs``.

    Args:
        snn: the converted model from :func:`spikemfm.convert`.
        inputs: a batch (images, token ids or tokenizer output); the batch is a leading axis of every process.
        part: which part to export (default: block 0); ``Part("tower")`` exports blocks + readout.
        timesteps: steps the network will run (the probes write after the last one).
        precision: ``floating_pt`` or ``fixed_pt`` (bit-accurate integer models).
        fixed: number formats of the fixed-point variant.
        probe_dir: folder for every neuron layer's spike probe and the output; None records the output only.
        steps_per_frame: a stream: ``inputs`` holds frames (F, B, ...) of an image tower, each fed for
            ``steps_per_frame`` steps (``timesteps`` = F × steps_per_frame); the processes keep their state across
            frames, as :func:`spikemfm.simulate_stream` does.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"export_lava: precision={precision!r}; choose one of {PRECISIONS}")
    if not isinstance(timesteps, int) or timesteps < 1:
        raise ConfigError(f"export_lava: timesteps={timesteps!r} must be a positive integer")
    if snn.quant_config.precision != "float64":
        raise ConfigError(f"export_lava: the model was quantized with precision={snn.quant_config.precision!r}; "
                          "the Lava models and their reference run in float64: quantize with "
                          "QuantConfig(precision='float64')")
    part = part or Part()
    x = [engine.as_inputs(snn.graph, f) for f in inputs] if steps_per_frame is not None else \
        engine.as_inputs(snn.graph, inputs)
    fxp = fixed_params(snn.graph, snn.qparams, fixed or FixedPointConfig(), snn.netlist)
    xs, x = step_inputs(snn, part, x, timesteps, steps_per_frame)
    per_step = [_np(fxp.to_fixed(s)).astype(np.int32) if precision == "fixed_pt" else _np(s) for s in xs]
    data = per_step[0]
    ring_buffer, _ = _lava()
    source = ring_buffer(data=np.stack(per_step, axis=-1))
    bd = _Builder(snn, fxp, Path(probe_dir) if probe_dir is not None else None, timesteps)
    out = _wire(bd, part, _Port(source.s_out, tuple(data.shape)), x, precision == "fixed_pt")
    path = bd.output(out)
    return LavaNetwork(part, precision, timesteps, source, bd.processes, path, bd.probes, bd.own_dir)

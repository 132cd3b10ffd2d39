"""``export_lava``: the Lava process graph of a converted block, sub-block or whole tower.

The graph mirrors :mod:`spikemfm.ir.engine` stage for stage (one process per neuron layer, synaptic
layer, spike×spike product, softmax, LayerNorm, residual add and pooling). The part's input stream
comes from a Lava ``RingBuffer`` source; its output and (optionally) every neuron layer's spikes are
written by probes. Lava is imported here, never by ``import spikemfm``.
"""
from __future__ import annotations

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
from spikemfm.neuromorphic.fixed import FixedParams, FixedPointConfig, fixed_params
from spikemfm.neuromorphic.parts import Part, Trace, part_input

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

    def __init__(self, snn: SpikingModel, fp: FixedParams, probe_dir: Path | None, steps: int) -> None:
        self.snn, self.qp, self.fp = snn, snn.qparams, fp
        self.probe_dir, self.steps = probe_dir, steps
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

    def neuron(self, point: str, h: _Port) -> _Port:
        q = self.qp.quants[point]
        n = self._add(self.P.SignedIF(shape=h.shape, step=q.step, theta=self.fp.theta[point], lo=q.lo, hi=q.hi,
                                      max_spikes=self.B, probe=self._probe(point), steps=self.steps, name=point))
        h.port.connect(n.a_in)
        return _Port(n.s_out, h.shape)

    def lut_neuron(self, m: N.MLP, h: _Port, fixed: bool) -> _Port:
        lut = self.qp.luts[m.path]
        lut = _np(lut.to(torch.int64)) if fixed else _np(lut)
        n = self._add(self.P.LutIF(shape=h.shape, lut=lut, lo_in=self.qp.quants[f"{m.path}.hidden"].lo,
                                   max_spikes=self.B, probe=self._probe(f"{m.path}.act"), steps=self.steps,
                                   name=f"{m.path}.act"))
        h.port.connect(n.s_in)
        return _Port(n.s_out, h.shape)

    def synapse(self, node: N.Linear, h: _Port, fixed: bool) -> _Port:
        ql = self.qp.linears[node.path]
        w = _np(ql.w_int.to(torch.int64)) if fixed else _np(ql.w_int)
        s = self._add(self.P.SpikeSynapse(in_shape=h.shape, weights=w, out_scale=_np(ql.out_scale),
                                          bias=_np(ql.bias), gain=_np(self.fp.gain[node.path]),
                                          offset=_np(self.fp.offset[node.path]),
                                          gain_shift=self.fp.cfg.gain_shift, name=node.path))
        h.port.connect(s.s_in)
        return _Port(s.a_out, (*h.shape[:-1], ql.w_int.shape[0]))

    def product(self, a: N.Attention, kind: str, ha: _Port, hb: _Port) -> _Port:
        b, n, _ = hb.shape
        out = (b, a.num_heads, n, n) if kind == "qk" else hb.shape
        scale = self.qp.score_scales[a.path] if kind == "qk" else self.qp.ctx_scales[a.path]
        p = self._add(self.P.SpikeProduct(kind=kind, a_shape=ha.shape, b_shape=hb.shape, out_shape=out,
                                          heads=a.num_heads, scale=scale, gain=int(self.fp.gain[f"{a.path}.{kind}"]),
                                          gain_shift=self.fp.cfg.gain_shift, name=f"{a.path}.{kind}"))
        ha.port.connect(p.a_in)
        hb.port.connect(p.b_in)
        return _Port(p.a_out, out)

    def softmax(self, a: N.Attention, h: _Port, mask: torch.Tensor | None) -> _Port:
        m = None if mask is None else np.broadcast_to(_np(mask), h.shape).copy()
        s = self._add(self.P.Softmax(shape=h.shape, mask=m, exp_lut=_np(self.fp.exp_lut), log2e=self.fp.log2e,
                                     frac_bits=self.fp.cfg.frac_bits, name=f"{a.path}.softmax"))
        h.port.connect(s.a_in)
        return _Port(s.a_out, h.shape)

    def norm(self, node: N.LayerNorm, h: _Port) -> _Port:
        fp = self.fp
        ln = self._add(self.P.LayerNormUnit(shape=h.shape, weight=_np(node.weight.double()),
                                            bias=_np(node.bias.double()), eps=node.eps, w_fx=_np(fp.norm_w[node.path]),
                                            b_fx=_np(fp.norm_b[node.path]), eps_fx=fp.norm_eps[node.path],
                                            name=node.path))
        h.port.connect(ln.a_in)
        return _Port(ln.a_out, h.shape)

    def add(self, ha: _Port, hb: _Port, name: str) -> _Port:
        r = self._add(self.P.ResidualAdd(shape=ha.shape, name=name))
        ha.port.connect(r.a_in)
        hb.port.connect(r.b_in)
        return _Port(r.a_out, ha.shape)

    def pool(self, r: N.Readout, h: _Port, inputs: engine.Inputs) -> _Port:
        b, n, _ = h.shape
        index = weights = None
        if r.pool == "cls":
            index = np.zeros(b, dtype=np.int64)
        elif r.pool == "eot":
            index = _np(inputs.ids.argmax(-1))
        elif r.pool == "avg_tokens":
            weights = np.ones((b, n), dtype=np.int64)
            weights[:, :r.prefix_tokens] = 0
        else:
            weights = np.ones((b, n), np.int64) if inputs.mask is None else _np(inputs.mask.long())
        p = self._add(self.P.TokenPool(in_shape=h.shape, kind=r.pool, index=index, weights=weights,
                                       name=f"{r.path}.pool"))
        h.port.connect(p.a_in)
        return _Port(p.a_out, (b, h.shape[-1]))

    def output(self, h: _Port) -> Path:
        path = (self.probe_dir or Path(tempfile.mkdtemp(prefix="spikemfm-lava-"))) / "output.npy"
        self._add(self.P.StreamProbe(shape=h.shape, probe=str(path), steps=self.steps, name="output"))
        h.port.connect(self.processes[-1].a_in)
        return path


def _attention(bd: _Builder, a: N.Attention, h: _Port, mask: torch.Tensor | None, fixed: bool) -> _Port:
    c = bd.neuron(f"{a.path}.in", h)
    q, k, v = (bd.neuron(f"{a.path}.{n}", bd.synapse(lin, c, fixed)) for n, lin in (("q", a.q), ("k", a.k), ("v", a.v)))
    p = bd.neuron(f"{a.path}.probs", bd.softmax(a, bd.product(a, "qk", q, k), mask))
    ctx = bd.neuron(f"{a.path}.ctx", bd.product(a, "av", p, v))
    return bd.synapse(a.o, ctx, fixed)


def _mlp(bd: _Builder, m: N.MLP, h: _Port, fixed: bool) -> _Port:
    hidden = bd.neuron(f"{m.path}.hidden", bd.synapse(m.fc1, bd.neuron(f"{m.path}.in", h), fixed))
    return bd.synapse(m.fc2, bd.lut_neuron(m, hidden, fixed), fixed)


def _half(bd: _Builder, b: N.Block, x: _Port, kind: str, mask: torch.Tensor | None, fixed: bool) -> _Port:
    ln = b.ln1 if kind == "attention" else b.ln2
    branch = (lambda h: _attention(bd, b.attn, h, mask, fixed)) if kind == "attention" else \
        (lambda h: _mlp(bd, b.mlp, h, fixed))
    if b.norm_first:
        return bd.add(x, branch(bd.norm(ln, x)), f"{b.path}.{kind}.add")
    return bd.norm(ln, bd.add(x, branch(x), f"{b.path}.{kind}.add"))


def _readout(bd: _Builder, r: N.Readout, x: _Port, inputs: engine.Inputs, fixed: bool) -> _Port:
    if r.norm is not None and not r.norm_after_pool:
        x = bd.norm(r.norm, x)
    y = bd.pool(r, x, inputs)
    if r.norm is not None and r.norm_after_pool:
        y = bd.norm(r.norm, y)
    return bd.synapse(r.proj, bd.neuron(f"{r.path}.in", y), fixed) if r.proj is not None else y


def _wire(bd: _Builder, graph: N.EncoderGraph, part: Part, x: _Port, inputs: engine.Inputs, fixed: bool) -> _Port:
    mask = engine.attention_mask(graph, inputs, x.shape[1])
    blocks = graph.blocks if part.kind == "tower" else (graph.blocks[part.block],)
    for b in blocks:
        if part.kind in ("attention", "block", "tower"):
            x = _half(bd, b, x, "attention", mask, fixed)
        if part.kind in ("mlp", "block", "tower"):
            x = _half(bd, b, x, "mlp", mask, fixed)
    return _readout(bd, graph.readout, x, inputs, fixed) if part.kind == "tower" else x


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
        finally:
            self.source.stop()
            limits.restore_original_limits()
        outputs = torch.from_numpy(np.load(self.output_path))
        spikes = {k: torch.from_numpy(np.load(p)).to(torch.int64) for k, p in self.probes.items()}
        rate = (self.timesteps - 1) / (t2 - t1) if self.timesteps > 1 and t2 > t1 else float("nan")
        return LavaRun(Trace(outputs, spikes), t1 - t0, t2 - t1, rate)


def export_lava(snn: SpikingModel, inputs: Any, part: Part | None = None, timesteps: int = 32,
                precision: str = "floating_pt", fixed: FixedPointConfig | None = None,
                probe_dir: str | Path | None = None) -> LavaNetwork:
    """Builds the Lava process graph of ``part`` of a converted tower, fed by ``inputs``.

    Args:
        snn: the converted model from :func:`spikemfm.convert`.
        inputs: a batch (images, token ids or tokenizer output); the batch is a leading axis of every process.
        part: which part to export (default: block 0); ``Part("tower")`` exports blocks + readout.
        timesteps: steps the network will run (the probes write after the last one).
        precision: ``floating_pt`` or ``fixed_pt`` (bit-accurate integer models).
        fixed: number formats of the fixed-point variant.
        probe_dir: folder for every neuron layer's spike probe and the output; None records the output only.
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
    x = engine.as_inputs(snn.graph, inputs)
    fp = fixed_params(snn.graph, snn.qparams, fixed or FixedPointConfig())
    stream = part_input(snn, part, x)
    data = _np(fp.to_fixed(stream)).astype(np.int32) if precision == "fixed_pt" else _np(stream)
    ring_buffer, _ = _lava()
    source = ring_buffer(data=np.repeat(data[..., None], timesteps, axis=-1))
    bd = _Builder(snn, fp, Path(probe_dir) if probe_dir is not None else None, timesteps)
    out = _wire(bd, snn.graph, part, _Port(source.s_out, tuple(data.shape)), x, precision == "fixed_pt")
    path = bd.output(out)
    return LavaNetwork(part, precision, timesteps, source, bd.processes, path, bd.probes)

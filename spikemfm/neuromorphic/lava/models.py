"""Process models of :mod:`spikemfm.neuromorphic.lava.process`: ``floating_pt`` and bit-accurate ``fixed_pt``.

Floating point reproduces :class:`spikemfm.snn.ops.SNNStepOps` (float64; integer accumulations exact).
Fixed point is the integer variant specified in :mod:`spikemfm.neuromorphic.fixed`, written here a
second time in NumPy (the neuron as a literal membrane recurrence, the square root with
``math.isqrt``) so that agreement with the PyTorch reference checks two implementations. Token pooling and the
generic ``FloatUnit`` run the one shared definition (:mod:`spikemfm.ir.units`): pooling is written once, and a
new unit kind runs in Lava without a model of its own.
Fixed-point messages are int32 with a declared 24-bit payload (Loihi 2's graded-spike width);
accumulators are int64. Every model receives before it sends (no synaptic delay).
Written for Lava's CPU simulator: Lava ships no spike×spike product, softmax or LayerNorm model.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from spikemfm.ir import units
from spikemfm.ir.units.pool import pool_tokens
from spikemfm.neuromorphic.lava.process import (FloatUnit, LayerNormUnit, LutIF, ResidualAdd, SignedIF, Softmax,
                                                SpikeProduct, SpikeSynapse, StreamProbe, TokenPool)

F64, I64, I32 = np.float64, np.int64, np.int32
MSG_BITS = 24


def _in(dtype: type) -> LavaPyType:
    return LavaPyType(PyInPort.VEC_DENSE, dtype, precision=MSG_BITS if dtype is I32 else None)


def _out(dtype: type) -> LavaPyType:
    return LavaPyType(PyOutPort.VEC_DENSE, dtype, precision=MSG_BITS if dtype is I32 else None)


def _state(dtype: type, bits: int | None = None) -> LavaPyType:
    return LavaPyType(np.ndarray, dtype, precision=bits)


def _bound(delta: np.ndarray, max_spikes: int | None) -> np.ndarray:
    return delta if max_spikes is None else np.clip(delta, -max_spikes, max_spikes)


class _Recorder:
    """Keeps each step's message and writes them all to ``proc_params['probe']`` after the last step."""

    def _record(self, x: np.ndarray) -> None:
        path = self.proc_params["probe"]
        if path is None:
            return
        if not hasattr(self, "_history"):
            self._history = []
        self._history.append(np.array(x, copy=True))
        if self.time_step == self.proc_params["steps"]:
            tmp = f"{path}.{os.getpid()}.tmp.npy"
            np.save(tmp, np.stack(self._history))
            os.replace(tmp, path)


def _model(proc: type, precision: str):
    """Decorates a model class as the CPU ``precision`` model of ``proc`` under the Loihi protocol."""
    def wrap(cls: type) -> type:
        return implements(proc=proc, protocol=LoihiProtocol)(requires(CPU)(tag(precision)(cls)))
    return wrap


# --- signed integrate-and-fire neuron -------------------------------------------------------------

@_model(SignedIF, "floating_pt")
class PySignedIFFloat(PyLoihiProcessModel, _Recorder):
    a_in, s_out = _in(F64), _out(F64)
    count, v, x_prev = _state(F64), _state(F64), _state(F64)

    def run_spk(self) -> None:
        p = self.proc_params
        x = self.a_in.recv()
        target = np.clip(np.floor(x / p["step"] + 0.5), p["lo"], p["hi"])
        delta = _bound(target - self.count, p["max_spikes"])
        self.count += delta
        self.s_out.send(delta)
        self._record(delta)


@_model(SignedIF, "fixed_pt")
class PySignedIFFixed(PyLoihiProcessModel, _Recorder):
    a_in, s_out = _in(I32), _out(I32)
    count, v, x_prev = _state(I64, 24), _state(I64, 32), _state(I64, 24)

    def run_spk(self) -> None:
        p = self.proc_params
        x = self.a_in.recv().astype(I64)
        self.v += x - self.x_prev  # integrate the change of the input current
        self.x_prev[...] = x
        n = _bound(np.floor_divide(self.v, p["theta"]), p["max_spikes"])
        n = np.clip(n, p["lo"] - self.count, p["hi"] - self.count)
        self.v -= n * p["theta"]
        self.count += n
        self.s_out.send(n.astype(I32))
        self._record(n)


# --- lookup neuron (GELU) ---------------------------------------------------------------------------

class _LutIFBase(PyLoihiProcessModel, _Recorder):
    def run_spk(self) -> None:
        p = self.proc_params
        self.in_count += self.s_in.recv().astype(self.in_count.dtype)
        target = np.asarray(p["lut"])[(self.in_count - p["lo_in"]).astype(I64)]
        delta = _bound(target - self.count, p["max_spikes"])
        self.count += delta
        self.s_out.send(delta.astype(self.s_out_dtype))
        self._record(delta)


@_model(LutIF, "floating_pt")
class PyLutIFFloat(_LutIFBase):
    s_in, s_out = _in(F64), _out(F64)
    in_count, count = _state(F64), _state(F64)
    s_out_dtype = F64


@_model(LutIF, "fixed_pt")
class PyLutIFFixed(_LutIFBase):
    s_in, s_out = _in(I32), _out(I32)
    in_count, count = _state(I64, 24), _state(I64, 24)
    s_out_dtype = I32


# --- event-driven synaptic layer ---------------------------------------------------------------------

class _SynapseBase(PyLoihiProcessModel):
    def _accumulate(self) -> None:
        s = self.s_in.recv().astype(self.acc.dtype)
        flat, acc = s.reshape(-1, s.shape[-1]), self.acc.reshape(-1, self.acc.shape[-1])
        rows = np.flatnonzero(flat.any(axis=1))  # only inputs that spiked add their weight columns
        if rows.size:
            acc[rows] += flat[rows] @ self.weights.T


@_model(SpikeSynapse, "floating_pt")
class PySpikeSynapseFloat(_SynapseBase):
    s_in, a_out = _in(F64), _out(F64)
    weights, acc = _state(F64), _state(F64)

    def run_spk(self) -> None:
        self._accumulate()
        p = self.proc_params
        y = self.acc * p["out_scale"]
        self.a_out.send(y + p["bias"] if p["bias"] is not None else y)


@_model(SpikeSynapse, "fixed_pt")
class PySpikeSynapseFixed(_SynapseBase):
    s_in, a_out = _in(I32), _out(I32)
    weights, acc = _state(I64, 8), _state(I64, 24)

    def run_spk(self) -> None:
        self._accumulate()
        p = self.proc_params
        self.a_out.send(((self.acc * p["gain"] + p["offset"]) >> p["gain_shift"]).astype(I32))


# --- spike x spike products of attention --------------------------------------------------------------

def _heads(x: np.ndarray, h: int) -> np.ndarray:
    b, n, d = x.shape
    return x.reshape(b, n, h, d // h).transpose(0, 2, 1, 3)


def _merge(x: np.ndarray) -> np.ndarray:
    b, h, n, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, n, h * d)


class _ProductBase(PyLoihiProcessModel):
    def _operands(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = self.proc_params["heads"]
        if self.proc_params["kind"] == "qk":
            return _heads(a, h), _heads(b, h).transpose(0, 1, 3, 2)
        return a, _heads(b, h)

    def _accumulate(self) -> np.ndarray:
        da = self.a_in.recv().astype(self.a_count.dtype)
        db = self.b_in.recv().astype(self.b_count.dtype)
        if not hasattr(self, "_acc"):
            self._acc = None
        dl, dr = self._operands(da, db)
        _, r_old = self._operands(self.a_count, self.b_count)
        inc = dl @ r_old  # ΔA·B_{t−1} (before B is updated: the operands are views of the counts)
        self.a_count += da
        self.b_count += db
        inc += self._operands(self.a_count, self.b_count)[0] @ dr  # + A_t·ΔB: one add per spike and partner
        self._acc = inc if self._acc is None else self._acc + inc
        return self._acc if self.proc_params["kind"] == "qk" else _merge(self._acc)


@_model(SpikeProduct, "floating_pt")
class PySpikeProductFloat(_ProductBase):
    a_in, b_in, a_out = _in(F64), _in(F64), _out(F64)
    a_count, b_count = _state(F64), _state(F64)

    def run_spk(self) -> None:
        self.a_out.send(self._accumulate() * self.proc_params["scale"])


@_model(SpikeProduct, "fixed_pt")
class PySpikeProductFixed(_ProductBase):
    a_in, b_in, a_out = _in(I32), _in(I32), _out(I32)
    a_count, b_count = _state(I64, 24), _state(I64, 24)

    def run_spk(self) -> None:
        p = self.proc_params
        self.a_out.send(((self._accumulate() * p["gain"]) >> p["gain_shift"]).astype(I32))


# --- softmax -------------------------------------------------------------------------------------------

@_model(Softmax, "floating_pt")
class PySoftmaxFloat(PyLoihiProcessModel):
    a_in, a_out = _in(F64), _out(F64)

    def run_spk(self) -> None:
        s = self.a_in.recv()
        mask = self.proc_params["mask"]
        if mask is not None:
            s = np.where(mask, -np.inf, s)
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        self.a_out.send(e / e.sum(axis=-1, keepdims=True))


@_model(Softmax, "fixed_pt")
class PySoftmaxFixed(PyLoihiProcessModel):
    a_in, a_out = _in(I32), _out(I32)

    def run_spk(self) -> None:
        p = self.proc_params
        f, lut = p["frac_bits"], p["exp_lut"]
        s = self.a_in.recv().astype(I64)
        blocked = np.zeros(s.shape, bool) if p["mask"] is None else np.broadcast_to(p["mask"], s.shape)
        top = np.where(blocked, np.iinfo(I64).min // 4, s).max(axis=-1, keepdims=True)
        t = (np.where(blocked, 0, s - top) * p["log2e"]) >> f  # z·log2(e) in Q.F, z ≤ 0
        e = lut[t & ((1 << f) - 1)] >> np.minimum(-(t >> f), 62)  # 2^frac from the table, 2^int as a shift
        e[blocked] = 0
        total = np.maximum(e.sum(axis=-1, keepdims=True), 1)
        self.a_out.send(np.floor_divide(e << f, total).astype(I32))


# --- LayerNorm -----------------------------------------------------------------------------------------

@_model(LayerNormUnit, "floating_pt")
class PyLayerNormFloat(PyLoihiProcessModel):
    a_in, a_out = _in(F64), _out(F64)

    def run_spk(self) -> None:
        p = self.proc_params
        x = self.a_in.recv()
        d = x - x.mean(axis=-1, keepdims=True)
        y = d / np.sqrt((d * d).mean(axis=-1, keepdims=True) + p["eps"])
        self.a_out.send(y * p["weight"] + p["bias"])


_isqrt = np.vectorize(math.isqrt, otypes=[I64])


@_model(LayerNormUnit, "fixed_pt")
class PyLayerNormFixed(PyLoihiProcessModel):
    a_in, a_out = _in(I32), _out(I32)

    def run_spk(self) -> None:
        p = self.proc_params
        x = self.a_in.recv().astype(I64)
        n = x.shape[-1]
        d = x - np.floor_divide(x.sum(axis=-1, keepdims=True), n)
        sigma = _isqrt(np.floor_divide((d * d).sum(axis=-1, keepdims=True), n) + p["eps_fx"])
        self.a_out.send((np.floor_divide(d * p["w_fx"], sigma) + p["b_fx"]).astype(I32))


# --- residual add, pooling, probe ----------------------------------------------------------------------

@_model(ResidualAdd, "floating_pt")
class PyResidualAddFloat(PyLoihiProcessModel):
    a_in, b_in, a_out = _in(F64), _in(F64), _out(F64)

    def run_spk(self) -> None:
        self.a_out.send(self.a_in.recv() + self.b_in.recv())


@_model(ResidualAdd, "fixed_pt")
class PyResidualAddFixed(PyLoihiProcessModel):
    a_in, b_in, a_out = _in(I32), _in(I32), _out(I32)

    def run_spk(self) -> None:
        self.a_out.send((self.a_in.recv().astype(I64) + self.b_in.recv()).astype(I32))


class _PoolBase(PyLoihiProcessModel):
    integer: bool

    def run_spk(self) -> None:
        p, x = self.proc_params, self.a_in.recv()
        ids, mask = (None if p[k] is None else torch.from_numpy(p[k]) for k in ("ids", "mask"))
        y = pool_tokens(torch.from_numpy(x.astype(I64) if self.integer else x), p["kind"], p["prefix_tokens"],
                        p["eos_id"], ids, mask, integer=self.integer)
        self.a_out.send(y.numpy().astype(I32) if self.integer else y.numpy())


@_model(TokenPool, "floating_pt")
class PyTokenPoolFloat(_PoolBase):
    a_in, a_out = _in(F64), _out(F64)
    integer = False


@_model(TokenPool, "fixed_pt")
class PyTokenPoolFixed(_PoolBase):
    a_in, a_out = _in(I32), _out(I32)
    integer = True


# --- float units of any registered kind ----------------------------------------------------------------

@_model(FloatUnit, "floating_pt")
class PyFloatUnitFloat(PyLoihiProcessModel):
    a_in, a_out = _in(F64), _out(F64)

    def run_spk(self) -> None:
        p = self.proc_params
        self.a_out.send(units.get(p["kind"]).forward(p["node"], torch.from_numpy(self.a_in.recv())).numpy())


@_model(FloatUnit, "fixed_pt")
class PyFloatUnitFixed(PyLoihiProcessModel):
    a_in, a_out = _in(I32), _out(I32)

    def run_spk(self) -> None:
        p = self.proc_params
        x = torch.from_numpy(self.a_in.recv().astype(I64))
        y = units.get(p["kind"]).fixed(p["node"], p["params"], x, None, p["frac_bits"])
        self.a_out.send(y.numpy().astype(I32))


class _ProbeBase(PyLoihiProcessModel, _Recorder):
    def run_spk(self) -> None:
        self._record(self.a_in.recv())


@_model(StreamProbe, "floating_pt")
class PyStreamProbeFloat(_ProbeBase):
    a_in = _in(F64)


@_model(StreamProbe, "fixed_pt")
class PyStreamProbeFixed(_ProbeBase):
    a_in = _in(I32)

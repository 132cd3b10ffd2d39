"""Fused per-step neuron kernels (numba): one pass per neuron layer instead of about ten torch passes.

One step of a layer of signed IF neurons (see :mod:`spikemfm.snn.neuron`), per neuron:

    target = clamp(⌊x/θ + ½⌋, lo, hi)          (or lut[c_in − lo_in] for a lookup neuron)
    n      = clip(target − c, −B, B)            (B = ∞ for graded spikes)
    c'     = c + n

and, in the same pass, what the recorder and the synaptic layers need: per-column totals of |n|
and of [n ≠ 0] (unit spikes and firing neurons, per input column of the next synaptic layer), per-row
activity, and c' as int8 for the int8 GEMM. Written by hand because torch runs each of these as a
separate memory pass (~0.1 ms each on a 10⁶-neuron layer), which made the neuron layers cost more
than the FP32 forward they replace; numba (already a dependency of neurobench) compiles them once,
cached on disk.

Bit-exact with the torch formulas: x/θ is an IEEE division in x's dtype with θ rounded to that dtype,
exactly as torch divides a tensor by a Python float, followed by +½ and floor in the same dtype.
"""
from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import torch


class Fired(NamedTuple):
    """One neuron layer's step: new counts (their int8 copy, or None), the counts before, and totals.

    ``col_spikes`` / ``col_events`` (columns,): unit spikes / firing neurons per column, over all rows;
    ``row_active`` (rows,): rows where some neuron fired.
    """

    count: torch.Tensor
    count8: torch.Tensor | None
    prev: torch.Tensor | None
    spikes: float
    events: float
    col_spikes: torch.Tensor
    col_events: torch.Tensor
    row_active: torch.Tensor

    @property
    def delta(self) -> torch.Tensor:
        """The spikes fired this step (computed on demand: most steps never need them)."""
        return self.count if self.prev is None else self.count - self.prev


# The kernels are written so LLVM vectorises the inner loop: float32 select-based clamps, no branches,
# integer (associative) accumulators; error_model="numpy" drops the per-division zero check. No fastmath:
# the division, +½ and floor must round exactly as torch's do.
# The per-chunk totals are summed in the compiled code too.
@numba.njit(inline="always")
def _update(r, j, target, prev, count, count8, spk, evt, k, bound):  # pragma: no cover - compiled
    p = prev[r, j]
    d = target - p
    d = d if d > -bound else -bound
    d = d if d < bound else bound
    c = p + d
    count[r, j] = c
    if count8.shape[0] > 0:
        count8[r, j] = np.int8(c)
    a = np.int32(abs(d))
    spk[k, j] += a
    e = np.int32(a > 0)
    evt[k, j] += e
    return e


@numba.njit(inline="always")
def _totals(spk, evt):  # pragma: no cover - compiled
    col_s = np.zeros(spk.shape[1])
    col_e = np.zeros(spk.shape[1])
    for k in range(spk.shape[0]):
        for j in range(spk.shape[1]):
            col_s[j] += spk[k, j]
            col_e[j] += evt[k, j]
    return col_s, col_e


@numba.njit(parallel=True, error_model="numpy", cache=True)
def _quant_step(x, step, lo, hi, bound, prev, chunks, count, count8, rows):  # pragma: no cover - compiled
    n_rows, width = x.shape
    spk, evt = np.zeros((chunks, width), np.int32), np.zeros((chunks, width), np.int32)
    half = x.dtype.type(0.5)
    for k in numba.prange(chunks):
        for r in range(k * n_rows // chunks, (k + 1) * n_rows // chunks):
            active = 0
            for j in range(width):
                v = np.floor(x[r, j] / step + half)
                v = v if v > lo else lo
                v = v if v < hi else hi
                active += _update(r, j, np.float32(v), prev, count, count8, spk, evt, k, bound)
            rows[r] = active > 0
    return _totals(spk, evt)


@numba.njit(parallel=True, error_model="numpy", cache=True)
def _lut_step(c_in, lut, lo_in, bound, prev, chunks, count, count8, rows):  # pragma: no cover - compiled
    n_rows, width = c_in.shape
    spk, evt = np.zeros((chunks, width), np.int32), np.zeros((chunks, width), np.int32)
    for k in numba.prange(chunks):
        for r in range(k * n_rows // chunks, (k + 1) * n_rows // chunks):
            active = 0
            for j in range(width):
                active += _update(r, j, lut[np.int32(c_in[r, j]) - lo_in], prev, count, count8, spk, evt, k, bound)
            rows[r] = active > 0
    return _totals(spk, evt)


_INT32_MAX = 2 ** 31 - 1


def _chunks(rows: int, max_step: float) -> int:
    """Row chunks (one per thread), enough that no chunk's int32 column total can overflow."""
    return max(1, min(rows, max(numba.get_num_threads(), -(-int(rows * max_step) // _INT32_MAX))))


def _buffers(shape: tuple[int, int], int8: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # allocated here, not in the compiled code: numba's allocator hands out fresh pages (page faults) each call
    return np.empty(shape, np.float32), np.empty(shape if int8 else (0, 0), np.int8), np.empty(shape[0], np.bool_)


def _fired(shape: torch.Size, prev: torch.Tensor | None, bufs: tuple, totals: tuple) -> Fired:
    (count, count8, rows), (col_s, col_e) = bufs, totals
    t = torch.from_numpy
    return Fired(t(count).view(shape), t(count8).view(shape) if count8.size else None, prev,
                 float(col_s.sum()), float(col_e.sum()), t(col_s), t(col_e), t(rows))


def _rows(t: torch.Tensor) -> tuple[int, int]:
    return (t.numel() // t.shape[-1], t.shape[-1])


def _prev(prev: torch.Tensor | None, shape: tuple[int, int]) -> np.ndarray:
    return np.zeros(shape, np.float32) if prev is None else prev.reshape(shape).numpy()


def _bound(max_spikes: int | None, lo: float, hi: float) -> np.float32:
    return np.float32(hi - lo if max_spikes is None else max_spikes)  # graded: a whole level range per step


def fire_quant(x: torch.Tensor, step: float, lo: int, hi: int, max_spikes: int | None,
               prev: torch.Tensor | None, int8: bool) -> Fired:
    """A quantizer neuron layer's step on input current x (float32/64, any shape, last axis = columns).

    ``prev``: counts after the previous step (float32, x's shape) or None at the first step.
    ``int8``: also return the counts as int8 (only when every level fits).
    """
    shape = _rows(x)
    xs = x.detach().contiguous().view(shape).numpy()
    bound = _bound(max_spikes, lo, hi)
    typ = xs.dtype.type
    bufs = _buffers(shape, int8)
    totals = _quant_step(xs, typ(step), typ(lo), typ(hi), bound, _prev(prev, shape), _chunks(shape[0], bound), *bufs)
    return _fired(x.shape, prev, bufs, totals)


def fire_lut(c_in: torch.Tensor, lut: torch.Tensor, lo_in: int, max_spikes: int | None,
             prev: torch.Tensor | None, int8: bool) -> Fired:
    """A lookup neuron layer's step: target = lut[c_in − lo_in] for the integer counts c_in (float32)."""
    shape = _rows(c_in)
    table = lut.numpy()
    bound = _bound(max_spikes, min(float(table.min()), 0.0), max(float(table.max()), 0.0))  # counts start at 0
    bufs = _buffers(shape, int8)
    totals = _lut_step(c_in.contiguous().view(shape).numpy(), table, np.int32(lo_in), bound, _prev(prev, shape),
                       _chunks(shape[0], bound), *bufs)
    return _fired(c_in.shape, prev, bufs, totals)


@numba.njit(parallel=True, error_model="numpy", cache=True)
def _affine(acc, scale, bias, out):  # pragma: no cover - compiled
    n_rows, width = acc.shape
    for r in numba.prange(n_rows):
        for j in range(width):
            out[r, j] = out.dtype.type(acc[r, j]) * scale[j] + bias[j]  # two roundings, as torch's mul then add


def affine(acc: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """(acc → dtype) · scale + bias in one pass; bit-identical to :meth:`~spikemfm.convert.quantizers.QLinear.affine`."""
    if bias is None:
        return acc.to(dtype) * scale.to(dtype)
    a = acc.reshape(-1, acc.shape[-1])
    out = np.empty(a.shape, np.float32 if dtype == torch.float32 else np.float64)
    _affine(a.numpy(), scale.to(dtype).numpy(), bias.to(dtype).numpy(), out)
    return torch.from_numpy(out).view(acc.shape)

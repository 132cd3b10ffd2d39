"""Fused per-step neuron kernels (numba): one pass per neuron layer instead of about ten torch passes.

One step of a layer of signed IF neurons (see :mod:`spikemfm.snn.neuron`), per neuron:

    target = clamp(⌊x/θ + ½⌋, lo, hi)          (or lut[c_in − lo_in] for a lookup neuron)
    n      = clip(target − c, −B, B)            (B = ∞ for graded spikes)
    c'     = c + n

and, in the same pass, what the recorder and the synaptic layers need: per-column totals of |n|
and of [n ≠ 0] (unit spikes and firing neurons, per input column of the next synaptic layer), per-row
activity; c' is stored in the narrowest integer dtype of the layer's levels (int8 at 8 bits, read as is
by the int8 GEMM). Written by hand because torch runs each of these as a
separate memory pass (~0.1 ms each on a 10⁶-neuron layer), which made the neuron layers cost more
than the FP32 forward they replace; numba (already a dependency of neurobench) compiles them once,
cached on disk.

Bit-exact with the torch formulas: x/θ is an IEEE division in x's dtype with θ rounded to that dtype,
exactly as torch divides a tensor by a Python float, followed by +½ and floor in the same dtype.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numba
import numpy as np
import torch


class Fired(NamedTuple):
    """One neuron layer's step: new counts, the counts before, and totals.

    ``count``: the running spike counts in the narrowest integer dtype that holds the layer's levels
    (:func:`count_dtype`: int8 for 8-bit signed levels, which the int8 GEMM reads directly);
    ``col_spikes`` / ``col_events`` (columns,): unit spikes / firing neurons per column, over all rows;
    ``row_active`` (rows,): rows where some neuron fired. These three are what a synaptic layer fed by the
    layer needs; they are None when the step was run with ``columns=False`` (a layer that feeds only
    spike×spike products or a lookup neuron), which skips them (~40 % faster: no per-column stores).
    """

    count: torch.Tensor
    prev: torch.Tensor | None
    spikes: float
    events: float
    col_spikes: torch.Tensor | None
    col_events: torch.Tensor | None
    row_active: torch.Tensor | None

    @property
    def delta(self) -> torch.Tensor:
        """The spikes fired this step, in a signed dtype wide enough for any move (computed on demand:
        most steps never need them)."""
        wide = torch.int16 if self.count.element_size() == 1 else torch.int32
        count = self.count.to(wide)
        return count if self.prev is None else count - self.prev.to(wide)


@functools.lru_cache(maxsize=None)
def count_dtype(lo: float, hi: float) -> torch.dtype:
    """Narrowest integer dtype holding every count lo … hi (counts start at 0, so 0 is included).

    Counts are stored this narrow because the neuron layers are memory-bound: an int8 count is read
    and written as 1 byte instead of 4 (float32), which halves a layer's memory traffic per step.
    """
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    for dt in (torch.int8, torch.uint8, torch.int16):
        info = torch.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return dt
    if -2 ** 31 <= lo and hi < 2 ** 31:
        return torch.int32
    raise ValueError(f"spike counts {lo} … {hi} exceed int32; use fewer bits")


# The kernels are written so LLVM vectorises the inner loop: select-based clamps, no branches,
# integer (associative) accumulators; error_model="numpy" drops the per-division zero check. No fastmath:
# the division, +½ and floor must round exactly as torch's do.
# The per-chunk totals are summed in the compiled code too.
@numba.njit(inline="always")
def _move(target, p, bound):  # pragma: no cover - compiled
    # float32 arithmetic on exact small integers: numba would widen int32 differences to int64 lanes
    d = target - p
    d = d if d > -bound else -bound
    d = d if d < bound else bound
    return p + d, np.int32(abs(d))


@numba.njit(inline="always")
def _update(r, j, target, prev, count, spk, evt, k, bound):  # pragma: no cover - compiled
    c, a = _move(target, np.float32(prev[r, j]), bound)
    count[r, j] = c
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
    return col_s, col_e, col_s.sum(), col_e.sum()


@numba.njit(inline="always")
def _level(x, step, half, lo, hi):  # pragma: no cover - compiled
    v = np.floor(x / step + half)
    v = v if v > lo else lo
    return np.float32(v if v < hi else hi)


@numba.njit(parallel=True, error_model="numpy", cache=True)
def _quant_step(x, step, lo, hi, bound, prev, chunks, count, rows):  # pragma: no cover - compiled
    n_rows, width = x.shape
    spk, evt = np.zeros((chunks, width), np.int32), np.zeros((chunks, width), np.int32)
    half = x.dtype.type(0.5)
    for k in numba.prange(chunks):
        for r in range(k * n_rows // chunks, (k + 1) * n_rows // chunks):
            active = 0
            for j in range(width):
                active += _update(r, j, _level(x[r, j], step, half, lo, hi), prev, count, spk, evt, k, bound)
            rows[r] = active > 0
    return _totals(spk, evt)


@numba.njit(parallel=True, error_model="numpy", cache=True)
def _quant_sum(x, step, lo, hi, bound, prev, chunks, count):  # pragma: no cover - compiled
    n_rows, width = x.shape
    spk, evt = np.zeros(chunks, np.int64), np.zeros(chunks, np.int64)
    half = x.dtype.type(0.5)
    for k in numba.prange(chunks):
        s, e = 0, 0
        for r in range(k * n_rows // chunks, (k + 1) * n_rows // chunks):
            for j in range(width):
                c, a = _move(_level(x[r, j], step, half, lo, hi), np.float32(prev[r, j]), bound)
                count[r, j] = c
                s += a
                e += np.int32(a > 0)
        spk[k], evt[k] = s, e
    return spk.sum(), evt.sum()


@numba.njit(inline="always")
def _affine_x(acc, scale, bias, r, j):  # pragma: no cover - compiled
    return scale.dtype.type(acc[r, j]) * scale[j] + bias[j]  # two roundings, as torch's mul then add


@numba.njit(parallel=True, error_model="numpy", cache=True)
def _affine_quant_step(acc, scale, bias, step, lo, hi, bound, prev, chunks, count, rows):  # pragma: no cover
    n_rows, width = acc.shape
    spk, evt = np.zeros((chunks, width), np.int32), np.zeros((chunks, width), np.int32)
    half = scale.dtype.type(0.5)
    for k in numba.prange(chunks):
        for r in range(k * n_rows // chunks, (k + 1) * n_rows // chunks):
            active = 0
            for j in range(width):
                x = _affine_x(acc, scale, bias, r, j)
                active += _update(r, j, _level(x, step, half, lo, hi), prev, count, spk, evt, k, bound)
            rows[r] = active > 0
    return _totals(spk, evt)


@numba.njit(parallel=True, error_model="numpy", cache=True)
def _affine_quant_heads(acc, scale, bias, step, lo, hi, bound, prev, chunks, count):  # pragma: no cover
    # totals only, counts written head-major: row r = (b, n), column j = (h, e) -> count[b, h, n, e]
    # (a (1, 1, rows, width) count is the plain row-major layout)
    _, heads, tokens, size = count.shape
    n_rows = acc.shape[0]
    spk, evt = np.zeros(chunks, np.int64), np.zeros(chunks, np.int64)
    half = scale.dtype.type(0.5)
    for k in numba.prange(chunks):
        s, e = 0, 0
        for r in range(k * n_rows // chunks, (k + 1) * n_rows // chunks):
            b, n = r // tokens, r % tokens
            for h in range(heads):
                for i in range(size):
                    x = _affine_x(acc, scale, bias, r, h * size + i)
                    c, a = _move(_level(x, step, half, lo, hi), np.float32(prev[b, h, n, i]), bound)
                    count[b, h, n, i] = c
                    s += a
                    e += np.int32(a > 0)
        spk[k], evt[k] = s, e
    return spk.sum(), evt.sum()


@numba.njit(parallel=True, error_model="numpy", cache=True)
def _lut_step(c_in, lut, lo_in, bound, prev, chunks, count, rows):  # pragma: no cover - compiled
    n_rows, width = c_in.shape
    spk, evt = np.zeros((chunks, width), np.int32), np.zeros((chunks, width), np.int32)
    for k in numba.prange(chunks):
        for r in range(k * n_rows // chunks, (k + 1) * n_rows // chunks):
            active = 0
            for j in range(width):
                active += _update(r, j, lut[np.int32(c_in[r, j]) - lo_in], prev, count, spk, evt, k, bound)
            rows[r] = active > 0
    return _totals(spk, evt)


_INT32_MAX = 2 ** 31 - 1


def _chunks(rows: int, max_step: int) -> int:
    """Row chunks (one per thread), enough that no chunk's int32 column total can overflow."""
    return max(1, min(rows, max(numba.get_num_threads(), -(-rows * max_step // _INT32_MAX))))


def _empty(shape: tuple[int, ...], dtype: torch.dtype) -> np.ndarray:
    # torch's allocator, not numpy's or numba's: it reuses freed blocks, the others kept handing out fresh
    # pages (a page fault per 4 KiB) on every step
    return torch.empty(shape, dtype=dtype).numpy()


def _run(kernel, inputs: tuple, params: tuple, prev: torch.Tensor | None, shape: tuple[int, ...], lo: int, hi: int,
         max_spikes: int | None, columns: bool, out_shape: torch.Size) -> Fired:
    """Runs a neuron-step kernel pair ``kernel`` = (with column totals, totals only): ``kernel[0](*inputs, *params,
    bound, prev, chunks, count, rows)`` when ``columns``, else ``kernel[1](*inputs, *params, bound, prev, threads,
    count)``, with counts of ``shape`` (rows first; only (rows, columns) when ``columns``)."""
    dtype = count_dtype(lo, hi)
    bound = _bound(max_spikes, lo, hi)
    count = _empty(shape, dtype)
    prev_np = _prev(prev, shape, dtype)
    if not columns:
        rows = inputs[0].shape[0]
        spikes, events = kernel[1](*inputs, *params, np.float32(bound), prev_np, _threads(rows), count)
        return Fired(torch.from_numpy(count).view(out_shape), prev, float(spikes), float(events), None, None, None)
    rows = _empty((shape[0],), torch.bool)
    col_s, col_e, spikes, events = kernel[0](*inputs, *params, np.float32(bound), prev_np, _chunks(shape[0], bound),
                                             count, rows)
    t = torch.from_numpy
    return Fired(t(count).view(out_shape), prev, float(spikes), float(events), t(col_s), t(col_e), t(rows))


def _threads(rows: int) -> int:
    return max(1, min(rows, numba.get_num_threads()))


def _prev(prev: torch.Tensor | None, shape: tuple[int, ...], dtype: torch.dtype) -> np.ndarray:
    if prev is None:
        return torch.zeros(shape, dtype=dtype).numpy()
    if prev.dtype != dtype:
        raise ValueError(f"previous counts are {prev.dtype}, this layer's are {dtype}")
    return prev.reshape(shape).numpy()


def _bound(max_spikes: int | None, lo: int, hi: int) -> int:
    return hi - lo if max_spikes is None else max_spikes  # graded: a whole level range per step


def fire_quant(x: torch.Tensor, step: float, lo: int, hi: int, max_spikes: int | None,
               prev: torch.Tensor | None, columns: bool = True) -> Fired:
    """A quantizer neuron layer's step on input current x (float32/64, any shape, last axis = columns).

    Args:
        prev: counts after the previous step (dtype :func:`count_dtype` (lo, hi), x's shape) or None at
            the first step.
        columns: also return per-column totals and active rows (see :class:`Fired`). Without them the
            layer is processed as (x.shape[0], rest) rows, which is all the same to an elementwise neuron
            and much faster for short last axes (attention probabilities: N per row).
    """
    x = x.detach().contiguous()
    shape = (x.numel() // x.shape[-1], x.shape[-1]) if columns or x.ndim < 2 else (x.shape[0], x[0].numel())
    xs = x.view(shape).numpy()
    typ = xs.dtype.type
    return _run((_quant_step, _quant_sum), (xs,), (typ(step), typ(lo), typ(hi)), prev, shape, int(lo), int(hi),
                max_spikes, columns, x.shape)


def fire_affine(acc: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, step: float, lo: int, hi: int,
                max_spikes: int | None, prev: torch.Tensor | None, shape: torch.Size, columns: bool = True,
                heads: int | None = None) -> Fired:
    """:func:`fire_quant` on the current x = :func:`affine` (acc, scale, bias) of a synaptic layer, in one pass
    that never writes x (bit-identical: the same two roundings, then the same level).

    Args:
        acc: (rows, out) accumulated integer current (int32, or integer-valued float32/float64).
        scale, bias: (out,) in the float path's dtype (bias may be None).
        shape: shape of the returned counts (rows·out elements).
        columns: as in :func:`fire_quant`.
        heads: split into attention heads: ``shape`` is (..., H, N, d) with rows = (..., n) and out = (h, e),
            and the counts are written in that layout, as attention reads them (no per-column totals).
    """
    a = acc.reshape(-1, acc.shape[-1])
    typ = np.float32 if scale.dtype == torch.float32 else np.float64
    b = torch.zeros_like(scale) if bias is None else bias  # x·s + 0 has x·s's level (±0 both give 0)
    params = (typ(step), typ(lo), typ(hi))
    inputs = (a.numpy(), scale.numpy(), b.numpy())
    if heads is None:
        if columns:
            return _run((_affine_quant_step, None), inputs, params, prev, (a.shape[0], a.shape[1]), int(lo), int(hi),
                        max_spikes, True, shape)
        buf = (1, 1, a.shape[0], a.shape[1])  # one head over all rows: plain row-major counts
    else:
        h, n, d = shape[-3:]
        if columns or h != heads or a.shape[0] % n or h * d != a.shape[1]:
            raise ValueError(f"head-major counts {tuple(shape)} with {heads} heads do not fit a current "
                             f"({a.shape[0]}, {a.shape[1]}), or per-column totals were asked for")
        buf = (a.shape[0] // n, h, n, d)
    return _run((None, _affine_quant_heads), inputs, params, prev, buf, int(lo), int(hi), max_spikes, False, shape)


def fire_lut(c_in: torch.Tensor, lut: torch.Tensor, lo_in: int, max_spikes: int | None,
             prev: torch.Tensor | None) -> Fired:
    """A lookup neuron layer's step: target = lut[c_in − lo_in] for the integer counts c_in.

    ``lut``: float32 table of (integer) output levels; the counts' dtype is :func:`count_dtype` over its range.
    """
    shape = (c_in.numel() // c_in.shape[-1], c_in.shape[-1])
    table = lut.numpy()
    lo, hi = min(int(table.min()), 0), max(int(table.max()), 0)  # counts start at 0
    return _run((_lut_step, None), (c_in.contiguous().view(shape).numpy(), table), (np.int32(lo_in),), prev, shape,
                lo, hi, max_spikes, True, c_in.shape)


@numba.njit(parallel=True, error_model="numpy", cache=True)
def _affine(acc, scale, bias, out):  # pragma: no cover - compiled
    n_rows, width = acc.shape
    for r in numba.prange(n_rows):
        for j in range(width):
            out[r, j] = _affine_x(acc, scale, bias, r, j)


def affine(acc: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """(acc → dtype) · scale + bias in one pass; bit-identical to :meth:`~spikemfm.convert.quantizers.QLinear.affine`."""
    if bias is None:
        return acc.to(dtype) * scale.to(dtype)
    a = acc.reshape(-1, acc.shape[-1])
    out = torch.empty(a.shape, dtype=dtype).numpy()
    _affine(a.numpy(), scale.to(dtype).numpy(), bias.to(dtype).numpy(), out)
    return torch.from_numpy(out).view(acc.shape)

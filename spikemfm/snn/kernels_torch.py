"""The neuron-step kernels of :mod:`spikemfm.snn.kernels` in plain torch: the same functions, arguments and
:class:`~spikemfm.snn.kernels.Fired` results, on whatever device the tensors live (CUDA included).

Per neuron (see :mod:`spikemfm.snn.neuron`):

    target = clamp(⌊x/θ + ½⌋, lo, hi)          (or lut[c_in − lo_in] for a lookup neuron)
    n      = clip(target − c, −B, B)            (B = hi − lo for graded spikes)
    c'     = c + n

The numba kernels fuse this into one pass on the CPU; here it is a handful of torch passes, which on a GPU are
each a bandwidth-bound kernel. Bit-exact with the numba kernels (tests hold them equal on the CPU):

- x/θ divides by θ as a 0-d tensor of x's dtype on x's device — a true IEEE division. Dividing by a Python
  float would let CUDA multiply by the reciprocal 1/θ instead (``div_true_kernel_cuda``'s CPU-scalar shortcut),
  which can differ in the last bit and move a level.
- the affine current is (acc → dtype)·scale, rounded, then + bias, rounded: two separate kernels, as the numba
  code and :meth:`~spikemfm.quant.params.QLinear.affine` round.
- counts and moves are integers (int32, exact for any level range that fits the count dtypes).
"""
from __future__ import annotations

import torch

from spikemfm.snn.kernels import Fired, count_dtype


def _divide(x: torch.Tensor, step: float) -> torch.Tensor:
    """x / θ as a true division (θ rounded to x's dtype, a 0-d tensor on x's device, not a CPU scalar)."""
    return torch.div(x, torch.tensor(step, dtype=x.dtype, device=x.device))


def level(x: torch.Tensor, step: float, lo: float, hi: float) -> torch.Tensor:
    """clamp(⌊x/θ + ½⌋, lo, hi) in x's dtype."""
    return _divide(x, step).add_(0.5).floor_().clamp_(lo, hi)


def _bound(max_spikes: int | None, lo: int, hi: int) -> int:
    return hi - lo if max_spikes is None else max_spikes  # graded: a whole level range per step


def _step(target: torch.Tensor, prev: torch.Tensor | None, lo: int, hi: int, max_spikes: int | None,
          columns: bool, out_shape: torch.Size) -> Fired:
    """Moves counts ``prev`` (None: zeros) toward integer-valued ``target`` (rows, columns) or any layout."""
    dtype = count_dtype(lo, hi)
    if prev is not None and prev.dtype != dtype:
        raise ValueError(f"previous counts are {prev.dtype}, this layer's are {dtype}")
    t = target.to(torch.int32)
    p = torch.zeros_like(t) if prev is None else prev.reshape(t.shape).to(torch.int32)
    bound = _bound(max_spikes, lo, hi)
    d = torch.sub(t, p).clamp_(-bound, bound)
    count = p.add_(d).to(dtype).view(out_shape)
    a = d.abs_()
    fired = a.ne(0)
    totals = torch.stack([a.sum(dtype=torch.float64), fired.sum(dtype=torch.float64)]).tolist()  # one sync
    if not columns:
        return Fired(count, prev, totals[0], totals[1], None, None, None)
    return Fired(count, prev, totals[0], totals[1], a.sum(0, dtype=torch.float64), fired.sum(0, dtype=torch.float64),
                 fired.any(1))


def fire_quant(x: torch.Tensor, step: float, lo: int, hi: int, max_spikes: int | None,
               prev: torch.Tensor | None, columns: bool = True) -> Fired:
    """:func:`spikemfm.snn.kernels.fire_quant` in torch."""
    x = x.detach()
    rows = x.reshape(-1, x.shape[-1]) if columns else x
    return _step(level(rows, step, lo, hi), prev, int(lo), int(hi), max_spikes, columns, x.shape)


def fire_affine(acc: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, step: float, lo: int, hi: int,
                max_spikes: int | None, prev: torch.Tensor | None, shape: torch.Size, columns: bool = True,
                heads: int | None = None) -> Fired:
    """:func:`spikemfm.snn.kernels.fire_affine` in torch (counts split into heads when ``heads`` is given)."""
    a = acc.reshape(-1, acc.shape[-1])
    x = affine(a, scale, bias, scale.dtype)
    target = level(x, step, lo, hi)
    if heads is None:
        return _step(target, prev, int(lo), int(hi), max_spikes, columns, shape)
    h, n, d = shape[-3:]
    if columns or h != heads or a.shape[0] % n or h * d != a.shape[1]:
        raise ValueError(f"head-major counts {tuple(shape)} with {heads} heads do not fit a current "
                         f"({a.shape[0]}, {a.shape[1]}), or per-column totals were asked for")
    split = target.view(a.shape[0] // n, n, h, d).transpose(1, 2)  # rows (b, n), columns (h, e) -> (b, h, n, e)
    return _step(split, prev, int(lo), int(hi), max_spikes, False, shape)


def fire_lut(c_in: torch.Tensor, lut: torch.Tensor, lo_in: int, max_spikes: int | None,
             prev: torch.Tensor | None) -> Fired:
    """:func:`spikemfm.snn.kernels.fire_lut` in torch (``lut`` on the counts' device)."""
    lo, hi = min(int(lut.min()), 0), max(int(lut.max()), 0)  # counts start at 0
    idx = c_in.reshape(-1, c_in.shape[-1]).to(torch.int64) - lo_in
    return _step(lut[idx], prev, lo, hi, max_spikes, True, c_in.shape)


def affine(acc: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """(acc → dtype)·scale, then + bias: :func:`spikemfm.snn.kernels.affine` in torch."""
    y = acc.to(dtype) * scale.to(dtype)
    return y if bias is None else y.add_(bias.to(dtype))

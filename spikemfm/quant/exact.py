"""Exact integer products in the cheapest arithmetic: shared by the QANN and the SNN runtimes.

Integer levels (spike counts) times integer weights, or two spike counts, are computed exactly:
int8 × int8 → int32 (``torch._int_mm``, VNNI on x86: ~5× a float32 GEMM) when both operands fit in
int8 and the sums in int32; else float32 when every value and partial sum stays below 2^24 (float32
holds every such integer exactly, so summation order cannot matter); else float64. The QANN and the
SNN pick the representation by the same bounds, so both see bit-identical integers before their float
path (scales, biases, LayerNorm, softmax) runs in the chosen precision.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

EXACT32 = 2 ** 24  # float32 holds every integer of magnitude below this exactly
HAS_INT_MM = hasattr(torch, "_int_mm")  # int8 GEMM with int32 accumulation (private but long-standing API)


def weight_dtype(w_int: torch.Tensor, max_in: float, max_step: float) -> torch.dtype:
    """The dtype in which x·W_intᵀ is exact: int8 (int32 sums), float32 or float64.

    Args:
        w_int: (out, in) integer-valued weights.
        max_in: bound on |x| of the accumulated inputs (a count's level span, in the SNN).
        max_step: bound on |x| of one operand (a count, or a step's spike delta).
    """
    bound = max_in * float(w_int.abs().sum(1).max())
    if HAS_INT_MM and max_step <= 127 and float(w_int.abs().max()) <= 127 and bound < 2 ** 31:
        return torch.int8
    return torch.float32 if bound < EXACT32 else torch.float64


def weight_operand(w_int: torch.Tensor, max_in: float, max_step: float) -> torch.Tensor:
    """W_intᵀ (contiguous) in the dtype of :func:`weight_dtype`."""
    return w_int.T.to(weight_dtype(w_int, max_in, max_step)).contiguous()


def int_mm_takes(x: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether ``torch._int_mm`` accepts these shapes on their device: any on the CPU; on CUDA M > 16 and K, N
    multiples of 8 (cuBLASLt's int8 GEMM)."""
    if x.device.type == "cpu":
        return True
    return x.shape[0] > 16 and x.shape[1] % 8 == 0 and w.shape[1] % 8 == 0


def int_matmul_float64(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The int8 GEMM's int32 result through float64 (exact: |every sum| < 2^31 < 2^53), for shapes the int8
    GEMM does not take."""
    return torch.matmul(x.to(torch.float64), w.to(torch.float64)).to(torch.int32)


def matmul(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """x (M, K) integer values (any dtype) @ w from :func:`weight_operand`, exact (int32 / float result);
    written into ``out`` (dtype :func:`accumulator_dtype` (w), shape (M, N)) when given."""
    if w.dtype == torch.int8:
        x8 = x.to(torch.int8)
        if int_mm_takes(x8, w):
            return torch._int_mm(x8, w, out=out)
        r = int_matmul_float64(x8, w)
        return r if out is None else out.copy_(r)
    return torch.matmul(x.to(w.dtype), w, out=out)


def accumulator_dtype(w: torch.Tensor) -> torch.dtype:
    """dtype of the running sums of :func:`matmul` with weights ``w``."""
    return torch.int32 if w.dtype == torch.int8 else w.dtype


def _dense(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """t in ``dtype`` laid out as a GEMM reads it without a copy (row-major, or the transpose of row-major, as
    Kᵀ is), in one conversion pass where ``.to`` then the copy bmm makes of a strided operand would take two."""
    if t.ndim >= 2 and not t.is_contiguous() and t.transpose(-1, -2).is_contiguous():
        return _dense(t.transpose(-1, -2), dtype).transpose(-1, -2)
    if t.dtype == dtype and t.is_contiguous():
        return t
    return torch.empty(t.shape, dtype=dtype, device=t.device).copy_(t)


def elementwise(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a ⊙ b of two integer-valued tensors (counts of any dtype), exact: float64 holds every product of two
    levels below 2^26 in magnitude."""
    return a.to(torch.float64) * b.to(torch.float64)


def product(a: torch.Tensor, b: torch.Tensor, bound: float) -> torch.Tensor:
    """a @ b of two integer-valued tensors (any dtype) whose every partial sum is at most ``bound``, exact."""
    dtype = torch.float32 if bound < EXACT32 else torch.float64
    return _dense(a, dtype) @ _dense(b, dtype)


@contextlib.contextmanager
def exact_matmuls(device: torch.device) -> Iterator[None]:
    """TF32 off for CUDA float32 GEMMs while the block runs (restored after): the exactness bound of a float32
    product assumes IEEE float32 operands, and TF32 rounds them to 10-bit mantissas."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved

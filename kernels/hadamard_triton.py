"""Triton blockwise 16x16 random Hadamard transform, matching ``hadamard_reference`` to fp32 rounding.

Each program multiplies a (rows x 16) tile by the 16x16 rotation with one ``tl.dot``. The dot asks
for IEEE fp32 because the default on GPU is TF32, whose 10-bit mantissa would quantise the rotated
values before NVFP4 does. Results are not bit-identical to torch: the 16-term sums are accumulated
in a different order, so they agree to a few fp32 ulps.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.hadamard_reference import BLOCK, pad_last_dim, random_hadamard_matrix

_ROWS_PER_PROG = 64


@triton.jit
def _blockwise_matmul_kernel(x_ptr, m_ptr, out_ptr, n_rows, ROWS_PER_PROG: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * ROWS_PER_PROG + tl.arange(0, ROWS_PER_PROG)
    cols = tl.arange(0, 16)
    mask = (rows < n_rows)[:, None]
    offs = rows[:, None] * 16 + cols[None, :]
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    m = tl.load(m_ptr + cols[:, None] * 16 + cols[None, :])
    y = tl.dot(x, m, input_precision="ieee")
    tl.store(out_ptr + offs, y, mask=mask)


def _blockwise_matmul(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Launch on a padded tensor viewed as (n_rows, 16); output in fp32, cast back to x.dtype."""
    xc = x.contiguous()
    out = torch.empty(xc.shape, device=x.device, dtype=torch.float32)
    n_rows = xc.numel() // BLOCK
    grid = (triton.cdiv(n_rows, _ROWS_PER_PROG),)
    _blockwise_matmul_kernel[grid](xc, m.contiguous(), out, n_rows, ROWS_PER_PROG=_ROWS_PER_PROG)
    return out.to(x.dtype)


def hadamard_transform_triton(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Kernel twin of :func:`kernels.hadamard_reference.hadamard_transform` (returns the padded width)."""
    return _blockwise_matmul(pad_last_dim(x), random_hadamard_matrix(seed, x.device))


def inverse_hadamard_transform_triton(y: torch.Tensor, seed: int,
                                      last_dim: int | None = None) -> torch.Tensor:
    """Kernel twin of :func:`kernels.hadamard_reference.inverse_hadamard_transform`."""
    if y.shape[-1] % BLOCK:
        raise ValueError("inverse expects the padded width produced by the forward transform")
    x = _blockwise_matmul(y, random_hadamard_matrix(seed, y.device).T)
    return x if last_dim is None else x[..., :last_dim]

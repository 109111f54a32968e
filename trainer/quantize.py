"""Quantise-dequantise primitives for the precision recipes: NVFP4 (fast CPU path) and FP8.

NVFP4: on CUDA the Triton kernels of ``kernels.dispatch`` are used. On CPU, ``kernels``'s reference
spends most of its time in a threshold loop that builds 4-bit codes; training never needs the codes, only
the decoded values, so :func:`nvfp4_fake_quantize` rounds onto the E2M1 grid arithmetically instead
(``round(m / gap) * gap`` with the grid spacing ``gap`` = 0.5, 1 or 2 is round-to-nearest-even on the
grid, and ``floor`` plus a uniform gives the same stochastic rounding). Scales are computed by exactly the
reference's fp32 operations, and tests check the result bit for bit against
``kernels.nvfp4_reference.fake_quantize`` (RTN and SR with shared uniforms, 1x16 and 16x16 blocks).
It is about ten times faster on CPU, which is what makes the nvfp4 recipe trainable in CI.

FP8: per-tensor current scaling (the scale is computed from this tensor's amax right now, no history),
E4M3 for forward operands and E5M2 for gradients, as in Transformer Engine's default recipe.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

from kernels import dispatch
from kernels.nvfp4_reference import BLOCK, E2M1_MAX, Mode, check_args, round_block_scale, tensor_scale

FP8_MAX = {torch.float8_e4m3fn: 448.0, torch.float8_e5m2: 57344.0}


def _pad(x: torch.Tensor, block_2d: bool) -> torch.Tensor:
    """Zero-pad the blocked dims to multiples of 16 (zeros never raise a block's amax)."""
    pad_rows = -x.shape[-2] % BLOCK if block_2d else 0
    pad_cols = -x.shape[-1] % BLOCK
    return F.pad(x, (0, pad_cols, 0, pad_rows)) if pad_cols or pad_rows else x


def _blocks(x: torch.Tensor, block_2d: bool) -> torch.Tensor:
    """(..., n_blocks, 16 or 256): one quantisation block per row."""
    if not block_2d:
        return x.reshape(*x.shape[:-1], x.shape[-1] // BLOCK, BLOCK)
    *lead, rows, cols = x.shape
    tiles = x.reshape(*lead, rows // BLOCK, BLOCK, cols // BLOCK, BLOCK).transpose(-3, -2)
    return tiles.reshape(*lead, rows // BLOCK, cols // BLOCK, BLOCK * BLOCK)


def _unblocks(blocks: torch.Tensor, shape: torch.Size, block_2d: bool) -> torch.Tensor:
    if not block_2d:
        return blocks.reshape(shape)
    *lead, rows, cols = shape
    return blocks.reshape(*lead, rows // BLOCK, cols // BLOCK, BLOCK, BLOCK).transpose(-3, -2).reshape(shape)


def _block_scales(blocks: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """fp32 decode scale of each block: E4M3-rounded block scale times the tensor scale (as the reference)."""
    amax = blocks.abs().amax(dim=-1, keepdim=True)
    denom = E2M1_MAX * ts
    raw = torch.where(denom > 0, amax / torch.where(denom > 0, denom, 1.0), 0.0)
    return round_block_scale(raw).float() * ts


def _round_to_grid(scaled: torch.Tensor, mode: Mode, rand: torch.Tensor | None) -> torch.Tensor:
    """Unit-scale E2M1 values: |x| clamped to 6, then RTNE or SR on the grid's local spacing."""
    mag = scaled.abs().clamp_(max=E2M1_MAX)
    gap = torch.where(mag < 2.0, 0.5, torch.where(mag < 4.0, 1.0, 2.0))
    if mode == "rtn":
        value = torch.round(mag / gap) * gap
    else:
        low = torch.floor(mag / gap) * gap
        value = torch.where(rand < (mag - low) / gap, low + gap, low)
    return torch.copysign(value, scaled)


def emulated_fake_quantize(
    x: torch.Tensor,
    mode: Mode = "rtn",
    block_2d: bool = False,
    generator: torch.Generator | None = None,
    rand: torch.Tensor | None = None,
) -> torch.Tensor:
    """NVFP4 quantise-dequantise, bit-identical to the kernels reference (see module doc), in x.dtype."""
    check_args(x, mode, block_2d)
    if mode == "sr" and rand is None:
        rand = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    ts = tensor_scale(x)
    padded = _pad(x.float(), block_2d)
    blocks = _blocks(padded, block_2d)
    scale = _block_scales(blocks, ts)
    scaled = torch.where(scale > 0, blocks / torch.where(scale > 0, scale, 1.0), 0.0)
    rand_blocks = None if rand is None else _blocks(_pad(rand.float(), block_2d), block_2d)
    values = _unblocks(_round_to_grid(scaled, mode, rand_blocks) * scale, padded.shape, block_2d)
    if values.shape != x.shape:
        values = values[tuple(slice(0, n) for n in x.shape)]
    return values.to(x.dtype)


@functools.cache
def _compiled_emulation() -> Any:
    """The emulation fused by torch.compile (dynamic shapes: one compile per mode and block layout).

    Fusing its ~15 elementwise passes into a few loops makes it about five times faster on CPU; it stays
    bit-exact because every operation is the same fp32 operation, only scheduled differently.
    """
    return torch.compile(emulated_fake_quantize, dynamic=True)


def nvfp4_fake_quantize(
    x: torch.Tensor,
    mode: Mode = "rtn",
    block_2d: bool = False,
    generator: torch.Generator | None = None,
    compiled: bool = False,
) -> torch.Tensor:
    """Triton kernels on CUDA, else the bit-exact emulation (``compiled``: fused by torch.compile)."""
    if dispatch.use_triton(x):
        return dispatch.nvfp4_fake_quantize(x, mode, block_2d, generator)
    if not compiled:
        return emulated_fake_quantize(x, mode, block_2d, generator)
    rand = torch.rand(x.shape, generator=generator, device=x.device) if mode == "sr" else None  # same draw
    return _compiled_emulation()(x, mode, block_2d, rand=rand)


def fp8_scale(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Per-tensor current scale (fp32, 0-dim): amax maps to the format's largest finite value."""
    amax = x.detach().abs().amax().float()
    return torch.where(amax > 0, amax / FP8_MAX[dtype], torch.ones_like(amax))


def fp8_quantize(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 tensor, decode scale): ``x ≈ q.float() * scale``, rounding to nearest even in the cast."""
    scale = fp8_scale(x, dtype)
    q = (x.float() / scale).clamp(-FP8_MAX[dtype], FP8_MAX[dtype]).to(dtype)
    return q, scale


def fp8_fake_quantize(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Quantise-dequantise to ``dtype`` in fp32: the emulation used where there is no FP8 GEMM."""
    q, scale = fp8_quantize(x, dtype)
    return q.float() * scale

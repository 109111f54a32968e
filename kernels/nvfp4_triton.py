"""Triton NVFP4 quantise / dequantise / fake-quantise kernels, bit-exact with ``nvfp4_reference``.

One program handles several whole blocks (16 values, or a 16x16 tile for weights), so the block
amax is a register reduction and the input is read once. The per-tensor amax is a torch reduction
launched before the kernel (it needs a global pass anyway) and shared with the reference, which
keeps the tensor scale identical on both paths; it stays on device, so there is no host sync.

Exactness notes (why the kernel looks the way it does):

* divisions use ``div_rn`` because Triton's ``/`` on fp32 may lower to an approximate divide on GPU;
* the E4M3 rounding of block scales is done by hand (magic-number add, ties to even) instead of a
  ``.to(tl.float8e4nv)`` cast, because that cast needs sm_89+ on GPU and the CPU interpreter's
  version does not round ties to even;
* stochastic rounding takes uniforms drawn by torch, so a given generator state yields the same
  grid points here and in the reference.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.nvfp4_reference import (
    BLOCK,
    Mode,
    NVFP4Tensor,
    check_args,
    crop_to_shape,
    draw_rand,
    pad_to_blocks,
    tensor_scale,
)


@triton.jit
def _grid_value(idx):
    """E2M1 magnitude for a 3-bit index (0, .5, 1, 1.5, 2, 3, 4, 6) without a lookup table."""
    low = idx.to(tl.float32) * 0.5
    high = tl.where(idx == 7, 6.0, (idx - 2).to(tl.float32))
    return tl.where(idx < 4, low, high)


@triton.jit
def _rtn_index(mag):
    """Round-to-nearest-even grid index; ``>=`` where the tie belongs to the upper (even) code."""
    idx = (mag > 0.25).to(tl.int32) + (mag >= 0.75).to(tl.int32) + (mag > 1.25).to(tl.int32)
    idx += (mag >= 1.75).to(tl.int32) + (mag > 2.5).to(tl.int32) + (mag >= 3.5).to(tl.int32)
    return idx + (mag > 5.0).to(tl.int32)


@triton.jit
def _sr_index(mag, rand):
    """Stochastic rounding: up with probability (mag - lo) / gap, computed exactly as the reference."""
    lo_idx = (mag >= 0.5).to(tl.int32) + (mag >= 1.0).to(tl.int32) + (mag >= 1.5).to(tl.int32)
    lo_idx += (mag >= 2.0).to(tl.int32) + (mag >= 3.0).to(tl.int32) + (mag >= 4.0).to(tl.int32)
    lo_idx += (mag >= 6.0).to(tl.int32)
    inv_gap = tl.where(lo_idx < 4, 2.0, tl.where(lo_idx < 6, 1.0, 0.5))
    frac = (mag - _grid_value(lo_idx)) * inv_gap
    up = (rand < frac) & (lo_idx < 7)
    return lo_idx + up.to(tl.int32)


@triton.jit
def _e4m3_round(v):
    """Nearest E4M3 value (ties to even) of ``v`` in [0, 448], as fp32.

    Adding 2**(e + 20) moves ``v`` into a binade whose fp32 ulp equals the E4M3 quantum 2**(e - 3),
    so the hardware add does the RTNE; below 2**-6 the E4M3 quantum is fixed at 2**-9 (subnormals).
    """
    biased_exp = (v.to(tl.int32, bitcast=True) >> 23) & 0xFF
    biased_exp = tl.maximum(biased_exp, 127 - 6)
    magic = ((biased_exp + 20) << 23).to(tl.float32, bitcast=True)
    return (v + magic) - magic


@triton.jit
def _e4m3_encode(q):
    """E4M3 bit pattern of an fp32 value that is already exactly representable (and >= 0)."""
    bits = q.to(tl.int32, bitcast=True)
    exp = ((bits >> 23) & 0xFF) - 127
    normal = ((exp + 7) << 3) | ((bits >> 20) & 0x7)
    subnormal = (q * 512.0).to(tl.int32)
    return tl.where(q >= 0.015625, normal, subnormal).to(tl.uint8)


@triton.jit
def _e4m3_decode(bits):
    """fp32 value of a (non-NaN) E4M3 bit pattern."""
    exp = (bits >> 3) & 0xF
    man = bits & 0x7
    normal = (((exp + 120) << 23) | (man << 20)).to(tl.float32, bitcast=True)
    return tl.where(exp == 0, man.to(tl.float32) * 0.001953125, normal)


@triton.jit
def _block_offsets(pid, rows, cols, BLOCK_2D: tl.constexpr, BLOCK_ELEMS: tl.constexpr,
                   BLOCKS_PER_PROG: tl.constexpr):
    """Block ids of this program and the element offsets of each block in the padded tensor.

    Blocks are numbered in the row-major order of the block-scale tensor, so block ``b``'s scale
    lives at ``scales[b]``; for 2D tiles the 256 elements are gathered with the matrix stride.
    """
    blk = pid.to(tl.int64) * BLOCKS_PER_PROG + tl.arange(0, BLOCKS_PER_PROG)
    k = tl.arange(0, BLOCK_ELEMS)
    if BLOCK_2D:
        tiles_c = cols // 16
        tiles_per_mat = (rows // 16) * tiles_c
        mat = blk // tiles_per_mat
        tile = blk % tiles_per_mat
        row = (tile // tiles_c) * 16
        col = (tile % tiles_c) * 16
        base = mat * rows * cols + row * cols + col
        offs = base[:, None] + (k // 16)[None, :] * cols + (k % 16)[None, :]
    else:
        offs = blk[:, None] * BLOCK_ELEMS + k[None, :]
    return blk, offs


@triton.jit
def _nvfp4_quant_kernel(x_ptr, rand_ptr, ts_ptr, out_ptr, scale_bits_ptr, n_blocks, rows, cols,
                        BLOCK_2D: tl.constexpr, BLOCK_ELEMS: tl.constexpr, BLOCKS_PER_PROG: tl.constexpr,
                        STOCHASTIC: tl.constexpr, FAKE: tl.constexpr):
    """Quantise whole blocks; ``FAKE`` writes decoded fp32 values instead of codes and scales."""
    blk, offs = _block_offsets(tl.program_id(0), rows, cols, BLOCK_2D, BLOCK_ELEMS, BLOCKS_PER_PROG)
    blk_ok = blk < n_blocks
    mask = blk_ok[:, None]
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    ts = tl.load(ts_ptr)

    amax = tl.max(tl.abs(x), axis=1)
    denom = 6.0 * ts
    raw = tl.where(denom > 0, tl.math.div_rn(amax, tl.where(denom > 0, denom, 1.0)), 0.0)
    bs = _e4m3_round(tl.minimum(raw, 448.0))
    scale = bs * ts
    safe_scale = tl.where(scale > 0, scale, 1.0)[:, None]
    scaled = tl.where(scale[:, None] > 0, tl.math.div_rn(x, safe_scale), 0.0)

    mag = tl.minimum(tl.abs(scaled), 6.0)
    if STOCHASTIC:
        rand = tl.load(rand_ptr + offs, mask=mask, other=0.0)
        idx = _sr_index(mag, rand)
    else:
        idx = _rtn_index(mag)
    negative = scaled.to(tl.int32, bitcast=True) < 0

    if FAKE:
        value = _grid_value(idx)
        value = tl.where(negative, -value, value) * scale[:, None]
        tl.store(out_ptr + offs, value, mask=mask)
    else:
        code = idx | (negative.to(tl.int32) << 3)
        tl.store(out_ptr + offs, code.to(tl.uint8), mask=mask)
        tl.store(scale_bits_ptr + blk, _e4m3_encode(bs), mask=blk_ok)


@triton.jit
def _nvfp4_dequant_kernel(codes_ptr, scale_bits_ptr, ts_ptr, out_ptr, n_blocks, rows, cols,
                          BLOCK_2D: tl.constexpr, BLOCK_ELEMS: tl.constexpr, BLOCKS_PER_PROG: tl.constexpr):
    blk, offs = _block_offsets(tl.program_id(0), rows, cols, BLOCK_2D, BLOCK_ELEMS, BLOCKS_PER_PROG)
    blk_ok = blk < n_blocks
    mask = blk_ok[:, None]
    code = tl.load(codes_ptr + offs, mask=mask, other=0).to(tl.int32)
    bits = tl.load(scale_bits_ptr + blk, mask=blk_ok, other=0).to(tl.int32)
    scale = _e4m3_decode(bits) * tl.load(ts_ptr)
    value = _grid_value(code & 0x7)
    value = tl.where((code & 0x8) != 0, -value, value) * scale[:, None]
    tl.store(out_ptr + offs, value, mask=mask)


def _layout(padded: torch.Size, block_2d: bool) -> tuple[int, int, int, int, int]:
    """(rows, cols, n_blocks, block_elems, blocks_per_prog); ~1K elements per program either way."""
    if block_2d:
        rows, cols = padded[-2], padded[-1]
        return rows, cols, padded.numel() // (BLOCK * BLOCK), BLOCK * BLOCK, 4
    return 1, padded[-1], padded.numel() // BLOCK, BLOCK, 64


def _scale_shape(padded: torch.Size, block_2d: bool) -> tuple[int, ...]:
    if block_2d:
        return (*padded[:-2], padded[-2] // BLOCK, padded[-1] // BLOCK)
    return (*padded[:-1], padded[-1] // BLOCK)


def _launch_quant(x: torch.Tensor, mode: Mode, block_2d: bool, generator: torch.Generator | None,
                  rand: torch.Tensor | None, fake: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the quantise kernel; returns (codes or fake values, E4M3 scale bits, tensor scale)."""
    check_args(x, mode, block_2d)
    rand = draw_rand(x, mode, generator, rand)
    xp = pad_to_blocks(x, block_2d).contiguous()
    rows, cols, n_blocks, elems, per_prog = _layout(xp.shape, block_2d)
    ts = tensor_scale(x).reshape(1)
    rp = pad_to_blocks(rand.float(), block_2d).contiguous() if rand is not None else ts
    out = torch.empty(xp.shape, device=x.device, dtype=torch.float32 if fake else torch.uint8)
    scale_bits = torch.empty(_scale_shape(xp.shape, block_2d), device=x.device, dtype=torch.uint8)
    grid = (triton.cdiv(n_blocks, per_prog),)
    _nvfp4_quant_kernel[grid](xp, rp, ts, out, scale_bits, n_blocks, rows, cols, BLOCK_2D=block_2d,
                              BLOCK_ELEMS=elems, BLOCKS_PER_PROG=per_prog, STOCHASTIC=mode == "sr", FAKE=fake)
    return out, scale_bits, ts


def quantize_triton(x: torch.Tensor, mode: Mode = "rtn", block_2d: bool = False,
                    generator: torch.Generator | None = None,
                    rand: torch.Tensor | None = None) -> NVFP4Tensor:
    """Kernel twin of :func:`kernels.nvfp4_reference.quantize` (same arguments, same bits)."""
    codes, scale_bits, ts = _launch_quant(x, mode, block_2d, generator, rand, fake=False)
    return NVFP4Tensor(codes, scale_bits.view(torch.float8_e4m3fn), ts.reshape(()), x.shape, block_2d)


def fake_quantize_triton(x: torch.Tensor, mode: Mode = "rtn", block_2d: bool = False,
                         generator: torch.Generator | None = None,
                         rand: torch.Tensor | None = None) -> torch.Tensor:
    """Kernel twin of :func:`kernels.nvfp4_reference.fake_quantize`; never materialises codes."""
    values, _, _ = _launch_quant(x, mode, block_2d, generator, rand, fake=True)
    return crop_to_shape(values, x.shape).to(x.dtype)


def dequantize_triton(q: NVFP4Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Kernel twin of :func:`kernels.nvfp4_reference.dequantize`."""
    codes = q.codes.contiguous()
    rows, cols, n_blocks, elems, per_prog = _layout(codes.shape, q.block_2d)
    out = torch.empty(codes.shape, device=codes.device, dtype=torch.float32)
    scale_bits = q.block_scales.contiguous().view(torch.uint8)
    ts = q.tensor_scale.float().reshape(1)
    grid = (triton.cdiv(n_blocks, per_prog),)
    _nvfp4_dequant_kernel[grid](codes, scale_bits, ts, out, n_blocks, rows, cols, BLOCK_2D=q.block_2d,
                                BLOCK_ELEMS=elems, BLOCKS_PER_PROG=per_prog)
    return crop_to_shape(out, q.shape).to(dtype)

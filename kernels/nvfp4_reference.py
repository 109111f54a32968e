"""Pure-PyTorch NVFP4 quantisation, the ground truth the Triton kernels are tested against.

Follows "Pretraining Large Language Models with NVFP4" (NVIDIA, 2025):

* values are E2M1 (grid ``±{0, 0.5, 1, 1.5, 2, 3, 4, 6}``),
* every 16 consecutive values along the last dim share one E4M3 (``float8_e4m3fn``) decode scale,
  or, with ``block_2d=True``, every 16x16 tile of the last two dims does (used for weights, so that
  ``W`` and ``W.T`` quantise to the same numbers in the forward and backward pass),
* one FP32 per-tensor decode scale ``amax / (6 * 448)`` stretches the tensor so that the largest
  block scale lands at the top of the E4M3 range, which keeps small blocks out of E4M3 underflow.

A value is decoded as ``e2m1 * float(block_scale) * tensor_scale``. The exact sequence of fp32
operations below is part of the contract: the Triton kernels repeat it step for step so that both
paths agree bit for bit.

Codes are stored unpacked, one ``uint8`` per value: bit 3 is the sign and bits 0-2 index the
magnitude grid (the layout used by the OCP / PTX E2M1 format). :func:`pack_codes` puts two codes in
a byte (element ``2i`` in the low nibble) when storage size matters.

Not handled: NaN / inf inputs (they propagate into the scales and the result is meaningless).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

Mode = Literal["rtn", "sr"]

BLOCK = 16
E2M1_MAX = 6.0
E4M3_MAX = 448.0
E2M1_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)

# Midpoints between neighbouring grid magnitudes, and whether a value exactly on the midpoint
# belongs to the upper neighbour. Ties go to the even code (RTNE), so the answer alternates.
_RTN_THRESHOLDS = ((0.25, False), (0.75, True), (1.25, False), (1.75, True), (2.5, False), (3.5, True),
                   (5.0, False))


@dataclass(frozen=True)
class NVFP4Tensor:
    """Quantised tensor; codes and scales cover the zero-padded shape so blocks stay whole."""

    codes: torch.Tensor  # uint8 in 0..15, padded shape (last dim, and for 2D also the one before, to 16)
    block_scales: torch.Tensor  # float8_e4m3fn, (..., L/16) or for 2D (..., R/16, C/16)
    tensor_scale: torch.Tensor  # fp32, 0-dim
    shape: torch.Size  # shape of the original tensor
    block_2d: bool


def e2m1_decode(codes: torch.Tensor) -> torch.Tensor:
    """Unit-scale value of each 4-bit code; the one place the grid is turned into numbers."""
    grid = torch.tensor(E2M1_GRID, dtype=torch.float32, device=codes.device)
    mag = grid[(codes & 0x7).long()]
    return torch.where((codes & 0x8) != 0, -mag, mag)


def _rtn_index(mag: torch.Tensor) -> torch.Tensor:
    """Grid index of ``mag`` (>= 0, already clamped to 6) under round-to-nearest-even."""
    idx = torch.zeros(mag.shape, dtype=torch.uint8, device=mag.device)
    for threshold, tie_goes_up in _RTN_THRESHOLDS:
        above = mag >= threshold if tie_goes_up else mag > threshold
        idx += above.to(torch.uint8)
    return idx


def _sr_index(mag: torch.Tensor, rand: torch.Tensor) -> torch.Tensor:
    """Grid index of ``mag`` rounded up with probability (mag - lo) / (hi - lo), so E[value] == mag.

    ``mag - lo`` is exact (Sterbenz) and the gap is a power of two, so ``frac`` is exact and the
    Triton kernel can reproduce the decision bit for bit given the same ``rand``.
    """
    lo_idx = torch.zeros(mag.shape, dtype=torch.uint8, device=mag.device)
    for g in E2M1_GRID[1:]:
        lo_idx += (mag >= g).to(torch.uint8)
    grid = torch.tensor(E2M1_GRID, dtype=torch.float32, device=mag.device)
    lo = grid[lo_idx.long()]
    inv_gap = torch.where(lo_idx < 4, 2.0, torch.where(lo_idx < 6, 1.0, 0.5))
    frac = (mag - lo) * inv_gap
    round_up = (rand < frac) & (lo_idx < 7)
    return lo_idx + round_up.to(torch.uint8)


def e2m1_encode(x: torch.Tensor, mode: Mode = "rtn", rand: torch.Tensor | None = None) -> torch.Tensor:
    """4-bit codes of unit-scale values; saturates at ±6 and keeps the sign of zero (-0.0 -> code 8)."""
    xf = x.float()
    mag = xf.abs().clamp(max=E2M1_MAX)
    if mode == "rtn":
        idx = _rtn_index(mag)
    elif mode == "sr":
        if rand is None:
            raise ValueError("stochastic rounding needs uniform randoms in [0, 1)")
        idx = _sr_index(mag, rand)
    else:
        raise ValueError(f"unknown rounding mode {mode!r}")
    return idx | (torch.signbit(xf).to(torch.uint8) << 3)


def pack_codes(codes: torch.Tensor) -> torch.Tensor:
    """Two codes per byte (element 2i low nibble, 2i+1 high nibble), halving storage."""
    if codes.shape[-1] % 2:
        raise ValueError("last dim must be even to pack")
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def unpack_codes(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_codes`."""
    return torch.stack((packed & 0xF, packed >> 4), dim=-1).flatten(-2)


def tensor_scale(x: torch.Tensor) -> torch.Tensor:
    """Per-tensor fp32 decode scale; 0 for an all-zero tensor (callers guard the division)."""
    return x.detach().float().abs().amax() / (E2M1_MAX * E4M3_MAX)


def round_block_scale(raw: torch.Tensor) -> torch.Tensor:
    """E4M3 block scale from the ideal fp32 one; clamping first keeps torch from producing NaN."""
    return raw.clamp(0.0, E4M3_MAX).to(torch.float8_e4m3fn)


def pad_to_blocks(x: torch.Tensor, block_2d: bool) -> torch.Tensor:
    """Zero-pad the blocked dims to multiples of 16; zeros never raise a block's amax."""
    pad_cols = -x.shape[-1] % BLOCK
    pad_rows = -x.shape[-2] % BLOCK if block_2d else 0
    if pad_cols or pad_rows:
        x = F.pad(x, (0, pad_cols, 0, pad_rows))
    return x


def to_blocks(xp: torch.Tensor, block_2d: bool) -> torch.Tensor:
    """View a padded tensor as (..., n_blocks, block_elems) so every block is one row."""
    if not block_2d:
        return xp.reshape(*xp.shape[:-1], xp.shape[-1] // BLOCK, BLOCK)
    *lead, rows, cols = xp.shape
    tiles = xp.reshape(*lead, rows // BLOCK, BLOCK, cols // BLOCK, BLOCK).transpose(-3, -2)
    return tiles.reshape(*lead, rows // BLOCK, cols // BLOCK, BLOCK * BLOCK)


def from_blocks(blocks: torch.Tensor, padded_shape: torch.Size, block_2d: bool) -> torch.Tensor:
    """Inverse of :func:`to_blocks`."""
    if not block_2d:
        return blocks.reshape(padded_shape)
    *lead, rows, cols = padded_shape
    tiles = blocks.reshape(*lead, rows // BLOCK, cols // BLOCK, BLOCK, BLOCK).transpose(-3, -2)
    return tiles.reshape(padded_shape)


def draw_rand(x: torch.Tensor, mode: Mode, generator: torch.Generator | None,
               rand: torch.Tensor | None) -> torch.Tensor | None:
    """Uniforms for SR with the shape of ``x``, so any implementation given them rounds identically."""
    if mode != "sr":
        return None
    if rand is not None:
        if rand.shape != x.shape:
            raise ValueError(f"rand has shape {tuple(rand.shape)}, expected {tuple(x.shape)}")
        return rand
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)


def check_args(x: torch.Tensor, mode: Mode, block_2d: bool) -> None:
    """Fail early with a clear message rather than deep inside a reshape."""
    if mode not in ("rtn", "sr"):
        raise ValueError(f"unknown rounding mode {mode!r}")
    if x.dim() < (2 if block_2d else 1):
        raise ValueError("2D block quantisation needs a tensor with at least 2 dims")


_Tensors4 = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _quantize_blocks(x: torch.Tensor, mode: Mode, block_2d: bool, rand: torch.Tensor | None) -> _Tensors4:
    """Shared core: (codes in block layout, e4m3 block scales, fp32 scale per block, tensor scale)."""
    ts = tensor_scale(x)
    blocks = to_blocks(pad_to_blocks(x.float(), block_2d), block_2d)
    amax = blocks.abs().amax(dim=-1, keepdim=True)
    denom = E2M1_MAX * ts
    raw = torch.where(denom > 0, amax / torch.where(denom > 0, denom, 1.0), 0.0)
    bs = round_block_scale(raw)
    scale = bs.float() * ts
    scaled = torch.where(scale > 0, blocks / torch.where(scale > 0, scale, 1.0), 0.0)
    rand_blocks = None
    if rand is not None:
        rand_blocks = to_blocks(pad_to_blocks(rand.float(), block_2d), block_2d)
    codes = e2m1_encode(scaled, mode, rand_blocks)
    return codes, bs.squeeze(-1), scale, ts


def quantize(x: torch.Tensor, mode: Mode = "rtn", block_2d: bool = False,
             generator: torch.Generator | None = None, rand: torch.Tensor | None = None) -> NVFP4Tensor:
    """Quantise to NVFP4. For ``mode="sr"`` pass ``rand`` (uniforms shaped like ``x``) to share randoms
    with another implementation, or a ``generator`` to draw them here."""
    check_args(x, mode, block_2d)
    rand = draw_rand(x, mode, generator, rand)
    codes, bs, _, ts = _quantize_blocks(x, mode, block_2d, rand)
    padded = pad_to_blocks(x, block_2d).shape
    return NVFP4Tensor(from_blocks(codes, padded, block_2d), bs, ts, x.shape, block_2d)


def dequantize(q: NVFP4Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Decode to ``dtype`` with the original (unpadded) shape."""
    blocks = to_blocks(q.codes, q.block_2d)
    scale = (q.block_scales.float() * q.tensor_scale).unsqueeze(-1)
    values = from_blocks(e2m1_decode(blocks) * scale, q.codes.shape, q.block_2d)
    return crop_to_shape(values, q.shape).to(dtype)


def crop_to_shape(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Drop the block padding; padding only ever extends dims, so a leading slice suffices."""
    if x.shape == shape:
        return x
    return x[tuple(slice(0, n) for n in shape)]


def fake_quantize(x: torch.Tensor, mode: Mode = "rtn", block_2d: bool = False,
                  generator: torch.Generator | None = None, rand: torch.Tensor | None = None) -> torch.Tensor:
    """Quantise-dequantise in one go, in ``x.dtype``: lets a high-precision model train on NVFP4 values."""
    check_args(x, mode, block_2d)
    rand = draw_rand(x, mode, generator, rand)
    codes, _, scale, _ = _quantize_blocks(x, mode, block_2d, rand)
    padded = pad_to_blocks(x, block_2d).shape
    values = from_blocks(e2m1_decode(codes) * scale, padded, block_2d)
    return crop_to_shape(values, x.shape).to(x.dtype)

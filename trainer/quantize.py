"""Quantise-dequantise primitives for the precision recipes: NVFP4 (fast CPU path) and FP8.

NVFP4: on CUDA the Triton kernels of ``kernels.dispatch`` are used. On CPU, ``kernels``'s reference
spends most of its time in a threshold loop that builds 4-bit codes; training never needs the codes, only
the decoded values, so :func:`emulated_operand` rounds onto the E2M1 grid arithmetically instead
(``round(m / gap) * gap`` with the grid spacing ``gap`` = 0.5, 1 or 2 is round-to-nearest-even on the
grid, and ``floor`` plus a uniform gives the same stochastic rounding). Scales are computed by exactly the
reference's fp32 operations, and tests check the result bit for bit against
``kernels.nvfp4_reference.fake_quantize`` (RTN and SR with shared uniforms, 1x16 and 16x16 blocks).
It is about ten times faster on CPU, which is what makes the nvfp4 recipe trainable in CI. The trainer
takes operands (:class:`NVFP4Operand`: values without the tensor scale, multiplied in bf16) rather
than fake-quantised fp32 tensors, see there.

FP8: per-tensor current scaling (the scale is computed from this tensor's amax right now, no history),
E4M3 for forward operands and E5M2 for gradients, as in Transformer Engine's default recipe.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import torch

from kernels import dispatch
from kernels.nvfp4_reference import (
    E2M1_MAX,
    Mode,
    check_args,
    crop_to_shape,
    from_blocks,
    pad_to_blocks,
    round_block_scale,
    tensor_scale,
    to_blocks,
)

FP8_MAX = {torch.float8_e4m3fn: 448.0, torch.float8_e5m2: 57344.0}


def _block_scales(blocks: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """Each block's E4M3-rounded scale, as fp32 (the same operations as the reference)."""
    amax = blocks.abs().amax(dim=-1, keepdim=True)
    denom = E2M1_MAX * ts
    raw = torch.where(denom > 0, amax / torch.where(denom > 0, denom, 1.0), 0.0)
    return round_block_scale(raw).float()


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


def _emulate(
    x: torch.Tensor, mode: Mode, block_2d: bool, rand: torch.Tensor | None, with_tensor_scale: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(decoded values in x's shape, fp32, tensor scale); the values include the tensor scale or not."""
    ts = tensor_scale(x)
    padded = pad_to_blocks(x.float(), block_2d)
    blocks = to_blocks(padded, block_2d)
    block_scale = _block_scales(blocks, ts)
    scale = block_scale * ts
    scaled = torch.where(scale > 0, blocks / torch.where(scale > 0, scale, 1.0), 0.0)
    rand_blocks = None if rand is None else to_blocks(pad_to_blocks(rand.float(), block_2d), block_2d)
    decode = scale if with_tensor_scale else block_scale
    values = from_blocks(_round_to_grid(scaled, mode, rand_blocks) * decode, padded.shape, block_2d)
    return crop_to_shape(values, x.shape), ts


def emulated_fake_quantize(
    x: torch.Tensor,
    mode: Mode = "rtn",
    block_2d: bool = False,
    generator: torch.Generator | None = None,
    rand: torch.Tensor | None = None,
) -> torch.Tensor:
    """NVFP4 quantise-dequantise, bit-identical to the kernels reference (see module doc), in x.dtype."""
    check_args(x, mode, block_2d)
    rand = _uniforms(x, mode, generator, rand)
    return _emulate(x, mode, block_2d, rand, with_tensor_scale=True)[0].to(x.dtype)


def emulated_operand(
    x: torch.Tensor,
    mode: Mode = "rtn",
    block_2d: bool = False,
    generator: torch.Generator | None = None,
    rand: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(E2M1 values times E4M3 block scales, tensor scale): see :class:`NVFP4Operand`. The values stay
    fp32 here; inductor's CPU code converts to bf16 several times slower than an eager cast does."""
    check_args(x, mode, block_2d)
    rand = _uniforms(x, mode, generator, rand)
    return _emulate(x, mode, block_2d, rand, with_tensor_scale=False)


def _uniforms(
    x: torch.Tensor, mode: Mode, generator: torch.Generator | None, rand: torch.Tensor | None
) -> torch.Tensor | None:
    """SR uniforms drawn outside any compiled graph, so compiled and eager runs round identically."""
    if mode == "sr" and rand is None:
        return torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    return rand


@dataclass(frozen=True)
class NVFP4Operand:
    """A GEMM operand as an FP4 tensor core consumes it.

    ``values`` are the E2M1 values times their E4M3 block scales: at most 6 significant bits, so bf16
    holds them exactly, and a bf16 GEMM (fp32 accumulation) multiplies exactly the numbers FP4 hardware
    multiplies. The fp32 per-tensor ``scale`` is applied to the product, as the hardware's epilogue does.
    Only the product is rounded (to bf16, the GEMM output precision of the bf16 recipe too). On CPUs
    without FP4 this is also the fast path: bf16 GEMMs run about twice as fast as fp32 ones.
    """

    values: torch.Tensor
    scale: torch.Tensor

    def t(self) -> NVFP4Operand:
        return NVFP4Operand(self.values.t(), self.scale)


def nvfp4_mm(a: NVFP4Operand, b: NVFP4Operand) -> torch.Tensor:
    """``a @ b`` in fp32: the product of the block-scaled values times both tensor scales."""
    return (a.values @ b.values).float() * (a.scale * b.scale)


@functools.cache
def _compiled(function: Any) -> Any:
    """``function`` fused by torch.compile (dynamic shapes: one compile per mode and block layout).

    Fusing the emulation's ~15 elementwise passes into a few loops makes it several times faster on
    CPU; it stays bit-exact because every operation is the same fp32 operation, only scheduled
    differently.
    """
    return torch.compile(function, dynamic=True)


def nvfp4_operand(
    x: torch.Tensor,
    mode: Mode = "rtn",
    block_2d: bool = False,
    generator: torch.Generator | None = None,
    compiled: bool = False,
) -> NVFP4Operand:
    """``x`` quantised to NVFP4 as a GEMM operand: Triton kernels on CUDA, else the emulation."""
    if dispatch.use_triton(x):
        q = dispatch.nvfp4_quantize(x, mode, block_2d, generator)
        unit = dataclasses.replace(q, tensor_scale=torch.ones_like(q.tensor_scale))
        return NVFP4Operand(dispatch.nvfp4_dequantize(unit, torch.bfloat16), q.tensor_scale)
    rand = _uniforms(x, mode, generator, None)
    emulate = _compiled(emulated_operand) if compiled else emulated_operand
    values, ts = emulate(x, mode, block_2d, rand=rand)
    return NVFP4Operand(values.to(torch.bfloat16), ts)


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

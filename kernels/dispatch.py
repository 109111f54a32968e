"""Public entry points: Triton kernels for CUDA tensors, the PyTorch reference everywhere else.

Callers (the proxy trainer's NVFP4 recipe) should import from here so the same code runs on a GPU
box and in CPU-only CI. The Triton modules are imported lazily: a CPU-only install without a working
triton still gets the reference path. Both paths give identical NVFP4 results for the same inputs
and generator state, because stochastic-rounding uniforms are always drawn by torch.

None of these functions define gradients; a trainer wraps ``nvfp4_fake_quantize`` in its own
straight-through estimator.
"""

from __future__ import annotations

import functools

import torch

from kernels import hadamard_reference, nvfp4_reference
from kernels.nvfp4_reference import Mode, NVFP4Tensor


@functools.cache
def triton_available() -> bool:
    """Whether the Triton modules import (cached: the answer cannot change within a process)."""
    try:
        import kernels.hadamard_triton  # noqa: F401
        import kernels.nvfp4_triton  # noqa: F401
    except ImportError:
        return False
    return True


def use_triton(x: torch.Tensor) -> bool:
    """Kernels only pay off (and only compile) for CUDA tensors."""
    return x.is_cuda and triton_available()


def nvfp4_quantize(x: torch.Tensor, mode: Mode = "rtn", block_2d: bool = False,
                   generator: torch.Generator | None = None) -> NVFP4Tensor:
    """NVFP4 codes + E4M3 block scales + FP32 tensor scale; ``block_2d`` for weights (16x16 tiles)."""
    if use_triton(x):
        from kernels.nvfp4_triton import quantize_triton

        return quantize_triton(x, mode, block_2d, generator)
    return nvfp4_reference.quantize(x, mode, block_2d, generator)


def nvfp4_dequantize(q: NVFP4Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Decode an :class:`NVFP4Tensor` back to ``dtype`` and the original shape."""
    if use_triton(q.codes):
        from kernels.nvfp4_triton import dequantize_triton

        return dequantize_triton(q, dtype)
    return nvfp4_reference.dequantize(q, dtype)


def nvfp4_fake_quantize(x: torch.Tensor, mode: Mode = "rtn", block_2d: bool = False,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Quantise-dequantise in ``x.dtype``: the NVFP4 emulation used by the proxy trainer.

    ``mode="sr"`` (stochastic rounding, unbiased) is meant for gradients, ``"rtn"`` for weights and
    activations; ``block_2d=True`` for weights so the forward and backward GEMMs see the same values.
    """
    if use_triton(x):
        from kernels.nvfp4_triton import fake_quantize_triton

        return fake_quantize_triton(x, mode, block_2d, generator)
    return nvfp4_reference.fake_quantize(x, mode, block_2d, generator)


def hadamard_16(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Seeded 16x16 random Hadamard rotation of every 16-block of the last dim (padded width out)."""
    if use_triton(x):
        from kernels.hadamard_triton import hadamard_transform_triton

        return hadamard_transform_triton(x, seed)
    return hadamard_reference.hadamard_transform(x, seed)


def inverse_hadamard_16(y: torch.Tensor, seed: int, last_dim: int | None = None) -> torch.Tensor:
    """Undo :func:`hadamard_16` with the same seed, cropping the last dim to ``last_dim``."""
    if use_triton(y):
        from kernels.hadamard_triton import inverse_hadamard_transform_triton

        return inverse_hadamard_transform_triton(y, seed, last_dim)
    return hadamard_reference.inverse_hadamard_transform(y, seed, last_dim)

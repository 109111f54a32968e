"""Pure-PyTorch 16x16 random Hadamard transform (RHT), the ground truth for the Triton kernel.

The NVFP4 recipe rotates the inputs of the weight-gradient GEMM with ``M = D @ H16 / 4`` (``D`` a
random ±1 diagonal) along the reduction dim: outliers are spread over 16 values, so a 1x16 NVFP4
block loses less to its shared scale, and because ``M`` is orthogonal the GEMM result is unchanged
(``(a M)(b M)^T = a b^T``). The block size matches the NVFP4 block size so one rotation never mixes
values that will be scaled separately.

The last dim is zero-padded to a multiple of 16 and the *padded* result is returned: the padding
lanes are generally non-zero after rotation, and dropping them would make the transform lossy.
:func:`inverse_hadamard_transform` takes ``last_dim`` to crop back to the original width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BLOCK = 16


def sylvester_hadamard(n: int = BLOCK) -> torch.Tensor:
    """Unnormalised ±1 Sylvester Hadamard matrix of size ``n`` (a power of two)."""
    if n < 1 or n & (n - 1):
        raise ValueError("Sylvester construction needs a power-of-two size")
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat((torch.cat((h, h), 1), torch.cat((h, -h), 1)), 0)
    return h


def random_signs(seed: int) -> torch.Tensor:
    """±1 diagonal drawn on a CPU generator, so the same seed gives the same rotation on any device."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (BLOCK,), generator=g).float() * 2 - 1


def random_hadamard_matrix(seed: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Orthogonal fp32 ``D @ H16 / 4``; rows of ``H16`` flipped by the seeded signs."""
    m = random_signs(seed)[:, None] * sylvester_hadamard(BLOCK) / 4
    return m.to(device)


def pad_last_dim(x: torch.Tensor) -> torch.Tensor:
    """Zero-pad the last dim to a multiple of 16 (a no-op view when already aligned)."""
    pad = -x.shape[-1] % BLOCK
    return F.pad(x, (0, pad)) if pad else x


def blockwise_matmul(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``x`` (last dim a multiple of 16) times ``m`` on every 16-wide block, in fp32, back in x.dtype."""
    blocks = x.float().reshape(*x.shape[:-1], x.shape[-1] // BLOCK, BLOCK)
    return (blocks @ m).reshape(x.shape).to(x.dtype)


def hadamard_transform(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Rotate each 16-block of the last dim; the result keeps the padded width (see module doc)."""
    return blockwise_matmul(pad_last_dim(x), random_hadamard_matrix(seed, x.device))


def inverse_hadamard_transform(y: torch.Tensor, seed: int, last_dim: int | None = None) -> torch.Tensor:
    """Undo :func:`hadamard_transform` (``M^T`` since ``M`` is orthogonal), cropping to ``last_dim``."""
    if y.shape[-1] % BLOCK:
        raise ValueError("inverse expects the padded width produced by the forward transform")
    x = blockwise_matmul(y, random_hadamard_matrix(seed, y.device).T)
    return x if last_dim is None else x[..., :last_dim]

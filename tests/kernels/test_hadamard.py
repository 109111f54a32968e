"""16x16 random Hadamard transform: orthogonality, exact inverse, and the Triton kernel vs reference."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported (conftest does it too)

import pytest
import torch

from kernels import dispatch
from kernels import hadamard_reference as ref
from kernels import hadamard_triton as tri


def test_sylvester_matrix_is_hadamard() -> None:
    h = ref.sylvester_hadamard(16)
    assert set(h.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(h @ h.T, 16 * torch.eye(16))
    assert torch.equal(h, h.T) and torch.equal(h[0], torch.ones(16))
    with pytest.raises(ValueError):
        ref.sylvester_hadamard(12)


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_random_hadamard_is_orthogonal(seed: int) -> None:
    m = ref.random_hadamard_matrix(seed)
    assert torch.equal(m @ m.T, torch.eye(16))  # exact: entries are ±1/4
    assert torch.equal(m.T @ m, torch.eye(16))
    assert torch.equal(m.abs(), torch.full((16, 16), 0.25))
    signs = ref.random_signs(seed)
    assert torch.equal(m, signs[:, None] * ref.sylvester_hadamard(16) / 4)


def test_seed_controls_the_signs() -> None:
    assert torch.equal(ref.random_signs(3), ref.random_signs(3))
    draws = torch.stack([ref.random_signs(s) for s in range(8)])
    assert len({tuple(r.tolist()) for r in draws}) == 8
    assert (draws == 1).any() and (draws == -1).any()


@pytest.mark.parametrize("shape", [(16,), (3, 50), (2, 4, 64)])
def test_forward_then_inverse_is_identity(device: torch.device, shape: tuple[int, ...]) -> None:
    x = torch.randn(shape, device=device)
    y = ref.hadamard_transform(x, seed=7)
    assert y.shape[-1] == -(-shape[-1] // 16) * 16  # padded width is kept
    assert not torch.allclose(y[..., : shape[-1]], x)  # it really rotates
    back = ref.inverse_hadamard_transform(y, seed=7, last_dim=shape[-1])
    assert back.shape == x.shape
    torch.testing.assert_close(back, x, rtol=0, atol=1e-6)
    wrong = ref.inverse_hadamard_transform(y, seed=8, last_dim=shape[-1])
    assert (wrong - x).abs().max() > 0.1  # the seed matters for the inverse


def test_blockwise_rotation_preserves_each_block_norm_and_spreads_outliers(device: torch.device) -> None:
    x = torch.zeros(2, 32, device=device)
    x[0, 5] = 8.0  # one outlier in block 0
    x[1, 16:] = torch.randn(16, device=device)
    y = ref.hadamard_transform(x, seed=1)
    assert torch.equal(y[0, :16].abs(), torch.full((16,), 2.0, device=device))  # 8 spread as ±8/4
    assert torch.equal(y[0, 16:], torch.zeros(16, device=device))  # blocks do not mix
    assert torch.equal(y[1, :16], torch.zeros(16, device=device))
    torch.testing.assert_close(y[1, 16:].norm(), x[1, 16:].norm())


def test_gemm_invariance(device: torch.device) -> None:
    """Why the NVFP4 recipe may rotate both Wgrad operands: (a M)(b M)^T == a b^T."""
    a, b = torch.randn(8, 40, device=device), torch.randn(6, 40, device=device)
    ra, rb = ref.hadamard_transform(a, seed=2), ref.hadamard_transform(b, seed=2)
    torch.testing.assert_close(ra @ rb.T, a @ b.T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("shape", "dtype"), [((1, 16), torch.float32), ((3, 50), torch.float32),
                                              ((2, 70, 64), torch.float32), ((5, 33), torch.bfloat16)])
def test_triton_matches_reference(device: torch.device, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = (torch.randn(shape) * 100).to(dtype).to(device)
    y_ref, y_tri = ref.hadamard_transform(x, 11), tri.hadamard_transform_triton(x, 11)
    assert y_tri.dtype == dtype and y_tri.shape == y_ref.shape
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(y_tri, y_ref, rtol=tol, atol=tol * 100)
    back_ref = ref.inverse_hadamard_transform(y_ref, 11, shape[-1])
    back_tri = tri.inverse_hadamard_transform_triton(y_tri, 11, shape[-1])
    torch.testing.assert_close(back_tri, back_ref, rtol=tol, atol=tol * 100)
    if dtype == torch.float32:
        torch.testing.assert_close(back_tri, x, rtol=0, atol=1e-4)


def test_inverse_rejects_unpadded_width() -> None:
    with pytest.raises(ValueError, match="padded width"):
        ref.inverse_hadamard_transform(torch.randn(4, 20), seed=0)
    with pytest.raises(ValueError, match="padded width"):
        tri.inverse_hadamard_transform_triton(torch.randn(4, 20), seed=0)


def test_dispatch(device: torch.device) -> None:
    x = torch.randn(4, 24, device=device)
    y = dispatch.hadamard_16(x, seed=5)
    torch.testing.assert_close(y, tri.hadamard_transform_triton(x, 5), rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(dispatch.inverse_hadamard_16(y, 5, 24), x, rtol=0, atol=1e-6)

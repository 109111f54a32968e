"""NVFP4 reference semantics, and the Triton kernels bit-exact against it (interpreter on CPU)."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported (conftest does it too)

import pytest
import torch

from kernels import dispatch
from kernels import nvfp4_reference as ref
from kernels import nvfp4_triton as tri

GRID = torch.tensor(ref.E2M1_GRID)
FULL = ref.E2M1_MAX * ref.E4M3_MAX  # a tensor whose amax is 2688 has tensor scale exactly 1


def _bits(q: ref.NVFP4Tensor) -> torch.Tensor:
    return q.block_scales.view(torch.uint8)


def _assert_same_quant(a: ref.NVFP4Tensor, b: ref.NVFP4Tensor) -> None:
    assert a.shape == b.shape and a.block_2d == b.block_2d
    assert torch.equal(a.codes, b.codes)
    assert torch.equal(_bits(a), _bits(b))
    assert torch.equal(a.tensor_scale, b.tensor_scale)


def _element_scales(q: ref.NVFP4Tensor) -> torch.Tensor:
    """Decode scale of every element: decode a copy whose codes are all 2 (unit value 1.0)."""
    ones = ref.NVFP4Tensor(torch.full_like(q.codes, 2), q.block_scales, q.tensor_scale, q.shape, q.block_2d)
    return ref.dequantize(ones)


def _with_unit_tensor_scale(blocks: torch.Tensor) -> torch.Tensor:
    """Prepend a block holding 2688 so the tensor scale is 1 and block scales equal amax / 6 exactly."""
    anchor = torch.zeros(1, ref.BLOCK, dtype=blocks.dtype, device=blocks.device)
    anchor[0, 0] = FULL
    return torch.cat((anchor, blocks))


def _both_quant(x: torch.Tensor, **kw) -> tuple[ref.NVFP4Tensor, ref.NVFP4Tensor]:
    a, b = ref.quantize(x, **kw), tri.quantize_triton(x, **kw)
    _assert_same_quant(a, b)
    return a, b


# ---------------------------------------------------------------- format


def test_all_16_codes_round_trip_exactly(device: torch.device) -> None:
    codes = torch.arange(16, dtype=torch.uint8, device=device)
    values = ref.e2m1_decode(codes)
    expected = [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    assert values.tolist() == expected + [-v for v in expected]
    assert torch.signbit(values[8])  # code 8 is -0.0, not a second +0
    assert torch.equal(ref.e2m1_encode(values), codes)

    # Through the full quantiser: block of all codes at scale 448, tensor scale 1.
    x = (values * ref.E4M3_MAX).reshape(1, 16)
    for q in _both_quant(x):
        assert torch.equal(q.codes, codes.reshape(1, 16))
        assert _bits(q).item() == 0x7E  # 448
        assert torch.equal(ref.dequantize(q), x)
        assert torch.equal(tri.dequantize_triton(q), x)


def test_format_dtypes_and_shapes(device: torch.device) -> None:
    x = torch.randn(3, 37, device=device)
    q = tri.quantize_triton(x)
    assert q.codes.dtype == torch.uint8 and q.codes.shape == (3, 48) and int(q.codes.max()) <= 15
    assert q.block_scales.dtype == torch.float8_e4m3fn and q.block_scales.shape == (3, 3)
    assert q.tensor_scale.dtype == torch.float32 and q.tensor_scale.dim() == 0
    assert q.tensor_scale.item() == pytest.approx(x.abs().max().item() / 2688, rel=1e-6)
    q2 = ref.quantize(torch.randn(2, 33, 40, device=device), block_2d=True)
    assert q2.codes.shape == (2, 48, 48) and q2.block_scales.shape == (2, 3, 3)


def test_pack_unpack_round_trip(device: torch.device) -> None:
    codes = torch.randint(0, 16, (5, 32), dtype=torch.uint8, device=device)
    packed = ref.pack_codes(codes)
    assert packed.shape == (5, 16)
    assert torch.equal(packed[0, 0], codes[0, 0] | (codes[0, 1] << 4))
    assert torch.equal(ref.unpack_codes(packed), codes)


@pytest.mark.parametrize("impl", ["ref", "triton"])
def test_rtn_ties_go_to_even_code(device: torch.device, impl: str) -> None:
    ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
    groups = (ties, -ties, ties + 1e-3, ties - 1e-3)
    blocks = torch.zeros(4, 16)
    blocks[:, :7] = torch.stack(groups)
    blocks[:, 7] = 6.0  # every block: scale 448, so the unit value equals x / 448 exactly
    x = _with_unit_tensor_scale(blocks * 448).to(device)
    q = ref.quantize(x) if impl == "ref" else tri.quantize_triton(x)
    mags = (q.codes[1:, :7] & 7).tolist()
    signs = (q.codes[1:, :7] >> 3).tolist()
    assert mags[0] == [0, 2, 2, 4, 4, 6, 6]  # ties -> even index
    assert mags[1] == [0, 2, 2, 4, 4, 6, 6] and signs[1] == [1] * 7
    assert mags[2] == [1, 2, 3, 4, 5, 6, 7]  # just above the tie
    assert mags[3] == [0, 1, 2, 3, 4, 5, 6]  # just below the tie


# ---------------------------------------------------------------- scales


def _e4m3_probe_values() -> tuple[torch.Tensor, torch.Tensor]:
    """Every positive finite E4M3 value and every midpoint between neighbours (incl. subnormals)."""
    bits = torch.arange(0, 0x7F, dtype=torch.uint8)  # 0x7F is NaN
    vals = bits.view(torch.float8_e4m3fn).float()
    mids = (vals[1:] + vals[:-1]) / 2
    return vals, mids


@pytest.mark.parametrize("impl", ["ref", "triton"])
def test_block_scales_round_to_nearest_even_e4m3(device: torch.device, impl: str) -> None:
    vals, mids = _e4m3_probe_values()
    wanted = torch.cat((vals, mids, torch.tensor([2.0**-10, 1.5 * 2.0**-10, 447.9, 3e-4])))
    blocks = torch.zeros(len(wanted), 16)
    blocks[:, 3] = wanted * 6  # exact: the probes have <= 5 significant bits
    x = _with_unit_tensor_scale(blocks).to(device)
    q = ref.quantize(x) if impl == "ref" else tri.quantize_triton(x)
    got = q.block_scales[1:].reshape(-1).float().cpu()
    assert torch.equal(got, wanted.to(torch.float8_e4m3fn).float())
    assert torch.equal(got[: len(vals)], vals)  # representable scales are kept exactly
    mid_got = got[len(vals): len(vals) + len(mids)]
    lower, upper = vals[:-1], vals[1:]
    assert ((mid_got == lower) | (mid_got == upper)).all()
    even = torch.where((lower.to(torch.float8_e4m3fn).view(torch.uint8) & 1) == 0, lower, upper)
    assert torch.equal(mid_got, even)


def test_block_scale_saturates_at_448(device: torch.device) -> None:
    assert ref.round_block_scale(torch.tensor([448.0, 448.01, 470.0, 1e9])).float().tolist() == [448.0] * 4
    g = torch.Generator().manual_seed(1)
    for magnitude in (1e-30, 3e-7, 1.0, 7.0, 1234.5, 6e25):
        x = (torch.randn(6, 64, generator=g) * magnitude).to(device)
        a, _ = _both_quant(x)
        assert int(_bits(a).max()) == 0x7E  # the block holding the global amax gets scale 448, not NaN
        err = (ref.dequantize(a) - x).abs().max() / x.abs().max()
        assert err < 0.2  # coarse but catches a wrong exponent in either scale


@pytest.mark.parametrize("impl", ["ref", "triton"])
def test_values_saturate_at_six_times_block_scale(device: torch.device, impl: str) -> None:
    # amax 74.4 wants scale 12.4, E4M3 rounds it down to 12, so 74.4 / 12 = 6.2 must clamp to 6.
    block = torch.zeros(1, 16)
    block[0, :3] = torch.tensor([74.4, -74.4, 10.0])
    x = _with_unit_tensor_scale(block).to(device)
    q = ref.quantize(x) if impl == "ref" else tri.quantize_triton(x)
    assert q.block_scales[1].float().item() == 12.0
    assert q.codes[1, :2].tolist() == [7, 15]
    fq = ref.fake_quantize(x) if impl == "ref" else tri.fake_quantize_triton(x)
    assert fq[1, :3].tolist() == [72.0, -72.0, 12.0]


@pytest.mark.parametrize("mode", ["rtn", "sr"])
@pytest.mark.parametrize("block_2d", [False, True])
def test_zero_blocks_and_zero_tensor_give_zeros_not_nan(device: torch.device, mode: str,
                                                        block_2d: bool) -> None:
    x = torch.randn(32, 48, device=device)
    x[:16, :16] = 0  # an all-zero block / tile
    x[16:, 32:] *= 1e-12  # blocks whose scale underflows E4M3 relative to the tensor amax
    rand = torch.rand(x.shape, device=device)
    for inp in (x, torch.zeros_like(x)):
        a = ref.quantize(inp, mode, block_2d, rand=rand)
        b = tri.quantize_triton(inp, mode, block_2d, rand=rand)
        _assert_same_quant(a, b)
        fa = ref.fake_quantize(inp, mode, block_2d, rand=rand)
        fb = tri.fake_quantize_triton(inp, mode, block_2d, rand=rand)
        assert torch.isfinite(fa).all() and torch.equal(fa, fb)
        assert torch.equal(fa[:16, :16], torch.zeros(16, 16, device=device))
        assert torch.equal(fa[16:, 32:], torch.zeros(16, 16, device=device))
    assert ref.quantize(torch.zeros(4, 16)).tensor_scale.item() == 0.0


# ---------------------------------------------------------------- Triton vs reference


def _sample(shape: tuple[int, ...], magnitude: float, dtype: torch.dtype,
            device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(hash((shape, magnitude)) % 2**31)
    x = torch.randn(shape, generator=g) * magnitude
    flat = x.view(-1)
    flat[:16] = 0  # a zero block (first block of the first row)
    flat[-3:] *= 500  # outliers so block scales spread over the E4M3 range
    return x.to(dtype).to(device)


CASES = [
    ((32,), False, 1.0, torch.float32),
    ((3, 37), False, 1.0, torch.float32),
    ((2, 5, 48), False, 3e4, torch.float32),
    ((7, 50), False, 1e-25, torch.float32),
    ((4, 100), False, 2e30, torch.float32),
    ((6, 70), False, 1.0, torch.bfloat16),
    ((33, 40), True, 1.0, torch.float32),
    ((2, 20, 18), True, 5e3, torch.float32),
    ((16, 16), True, 1.0, torch.bfloat16),
]


@pytest.mark.parametrize(("shape", "block_2d", "magnitude", "dtype"), CASES)
def test_rtn_triton_bit_exact_with_reference(device: torch.device, shape, block_2d, magnitude, dtype) -> None:
    x = _sample(shape, magnitude, dtype, device)
    a, b = _both_quant(x, block_2d=block_2d)
    assert (a.codes & 7).max() == 7  # the block holding the amax uses the top code
    deq_ref, deq_tri = ref.dequantize(a), tri.dequantize_triton(b)
    assert torch.isfinite(deq_ref).all() and torch.equal(deq_ref, deq_tri)
    fake_ref = ref.fake_quantize(x, block_2d=block_2d)
    fake_tri = tri.fake_quantize_triton(x, block_2d=block_2d)
    assert fake_ref.dtype == dtype and fake_ref.shape == x.shape
    assert torch.equal(fake_ref, fake_tri)
    assert torch.equal(fake_ref, deq_ref.to(dtype))  # fused path == quantise then dequantise


@pytest.mark.parametrize(("shape", "block_2d", "magnitude", "dtype"), CASES[1:3] + CASES[6:8])
def test_sr_triton_same_grid_points_as_reference(device: torch.device, shape, block_2d, magnitude,
                                                 dtype) -> None:
    x = _sample(shape, magnitude, dtype, device)
    rand = torch.rand(shape, generator=torch.Generator().manual_seed(7)).to(device)
    a, b = _both_quant(x, mode="sr", block_2d=block_2d, rand=rand)
    fa = ref.fake_quantize(x, "sr", block_2d, rand=rand)
    assert torch.equal(fa, tri.fake_quantize_triton(x, "sr", block_2d, rand=rand))
    rtn = ref.quantize(x, block_2d=block_2d)
    assert not torch.equal(a.codes, rtn.codes)  # the randoms actually changed some roundings
    # Every SR result is one of the two grid points around the scaled value.
    scale = _element_scales(a)
    scaled = torch.where(scale > 0, x.float() / scale, 0.0).abs().clamp(max=6.0).cpu()
    grid = GRID
    hi_idx = torch.bucketize(scaled, grid).clamp(max=7)
    lo_idx = torch.where(grid[hi_idx] > scaled, hi_idx - 1, hi_idx).clamp(min=0)
    got = ref.e2m1_decode(ref.crop_to_shape(a.codes, x.shape)).abs().cpu()
    assert ((got == grid[lo_idx]) | (got == grid[hi_idx])).all()


def test_sr_same_generator_seed_same_result_on_both_paths(device: torch.device) -> None:
    x = torch.randn(5, 40, device=device)
    a = ref.fake_quantize(x, "sr", generator=torch.Generator(device).manual_seed(3))
    b = tri.fake_quantize_triton(x, "sr", generator=torch.Generator(device).manual_seed(3))
    c = ref.fake_quantize(x, "sr", generator=torch.Generator(device).manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ---------------------------------------------------------------- stochastic rounding statistics


def test_sr_is_unbiased(device: torch.device) -> None:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(4, 16, generator=g) * 2 - 1) * FULL
    x[:, 0] = torch.tensor([FULL, -FULL, FULL, -FULL])  # every block: scale 448, tensor scale 1
    x = x.reshape(1, 64).to(device)
    n = 4096
    draws = ref.fake_quantize(x.expand(n, 64), "sr", generator=torch.Generator(device).manual_seed(1))
    mean = draws.mean(0, dtype=torch.float64)
    unit = (x[0] / 448).abs()
    gap = torch.where(unit < 2, 0.5, torch.where(unit < 4, 1.0, 2.0)) * 448
    tol = 5 * gap / (2 * n**0.5)  # 5 sigma of a Bernoulli mean spanning one grid gap
    assert ((mean - x[0]).abs() <= tol).all()
    assert (draws.std(0)[1:16] > 0).all()  # off-grid values really are randomised
    rtn_bias = (ref.fake_quantize(x) - x).abs().mean()
    assert rtn_bias > 10 * (mean - x[0]).abs().mean()  # the test can tell a biased rounding apart


# ---------------------------------------------------------------- 2D weight blocks


@pytest.mark.parametrize("shape", [(40, 72), (2, 33, 48)])
def test_2d_quantisation_is_transpose_invariant(device: torch.device, shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(5)
    w = torch.randn(shape, generator=g) * torch.exp(2 * torch.randn(*shape[:-1], 1, generator=g))
    w = w.to(device)
    wt = w.transpose(-1, -2)  # non-contiguous on purpose
    for quant, fake in ((ref.quantize, ref.fake_quantize), (tri.quantize_triton, tri.fake_quantize_triton)):
        q, qt = quant(w, block_2d=True), quant(wt, block_2d=True)
        assert torch.equal(q.codes.transpose(-1, -2), qt.codes)
        assert torch.equal(_bits(q).transpose(-1, -2), _bits(qt))
        assert torch.equal(fake(w, block_2d=True).transpose(-1, -2), fake(wt, block_2d=True))
    # 1x16 blocks do not have this property, which is why weights use 16x16 tiles.
    assert not torch.equal(ref.fake_quantize(w).transpose(-1, -2), ref.fake_quantize(wt))


def test_2d_tiles_share_one_scale(device: torch.device) -> None:
    w = torch.ones(32, 32, device=device)
    w[20, 5] = 100.0  # only the tile (1, 0) should see this outlier
    q = tri.quantize_triton(w, block_2d=True)
    scales = q.block_scales.float()
    assert scales[1, 0] > scales[0, 0] and scales[0, 0] == scales[0, 1] == scales[1, 1]


# ---------------------------------------------------------------- dispatch


def test_dispatch_on_cpu_uses_reference_and_matches_triton(device: torch.device) -> None:
    x = torch.randn(9, 40, device=device)
    assert dispatch.use_triton(x) == x.is_cuda
    out = dispatch.nvfp4_fake_quantize(x, "sr", generator=torch.Generator(device).manual_seed(2))
    same_seed = tri.fake_quantize_triton(x, "sr", generator=torch.Generator(device).manual_seed(2))
    assert torch.equal(out, same_seed)
    q = dispatch.nvfp4_quantize(x, block_2d=True)
    assert torch.equal(dispatch.nvfp4_dequantize(q), ref.fake_quantize(x, block_2d=True))


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="rounding mode"):
        ref.fake_quantize(torch.randn(16), mode="nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 dims"):
        tri.quantize_triton(torch.randn(16), block_2d=True)
    with pytest.raises(ValueError, match="rand has shape"):
        ref.quantize(torch.randn(4, 16), "sr", rand=torch.rand(4, 32))

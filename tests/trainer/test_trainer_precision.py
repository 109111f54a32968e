"""Precision recipes: the NVFP4 and FP8 linears against explicit reference computations.

References are built from ``kernels``'s pure-PyTorch NVFP4 quantiser and Hadamard transform, not from
the trainer's own fast emulation, so a mistake in either shows up here.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from kernels import hadamard_reference as had
from kernels import nvfp4_reference as ref
from trainer.model import TransformerLM, model_config
from trainer.precision import (
    FP8Linear,
    NVFP4Linear,
    NVFP4Settings,
    PrecisionConfig,
    Recipe,
    high_precision_blocks,
)
from trainer.quantize import emulated_fake_quantize, fp8_fake_quantize, nvfp4_operand

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2


def _operands(tokens=40, d_in=48, d_out=32, seed=0):
    """Activations with a few outliers (as real ones have) and a weight; 40 tokens pad to 48 for H16."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, tokens // 2, d_in, generator=g)
    x[0, 3, 5] = 40.0
    w = torch.randn(d_out, d_in, generator=g) * 0.1
    dy = torch.randn(2, tokens // 2, d_out, generator=g)
    return x, w, dy


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


@pytest.mark.parametrize("block_2d", [False, True])
@pytest.mark.parametrize("shape", [(37, 53), (3, 16, 32), (16, 16)])
def test_fast_emulation_is_bit_exact_with_the_kernels_reference(shape, block_2d):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g) * torch.rand(shape[:-1] + (1,), generator=g) * 50
    x.view(-1)[:20] = 0.0
    x.view(-1)[20:24] = -0.0
    rand = torch.rand(shape, generator=g)
    assert torch.equal(
        _bits(emulated_fake_quantize(x, "rtn", block_2d)), _bits(ref.fake_quantize(x, "rtn", block_2d))
    )
    assert torch.equal(
        _bits(emulated_fake_quantize(x, "sr", block_2d, rand=rand)),
        _bits(ref.fake_quantize(x, "sr", block_2d, rand=rand)),
    )


def test_fast_emulation_rounds_grid_midpoints_to_even_like_the_reference():
    # amax 2688 gives tensor scale 1 and block scale 448 -> unit scale 448 for the block holding 6*448
    mids = torch.tensor(
        [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0, -0.25, -2.5, -5.0, 5.99, 0.0, 1.0, 3.0, 4.0]
    )
    x = mids * 448.0
    expected = ref.fake_quantize(x)
    assert torch.equal(emulated_fake_quantize(x), expected)
    assert expected[:7].div(448).tolist() == [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0]
    assert torch.equal(emulated_fake_quantize(torch.zeros(4, 32)), torch.zeros(4, 32))


def _nvfp4_layer(w: torch.Tensor, seed: int = 5) -> NVFP4Linear:
    layer = NVFP4Linear(w.shape[1], w.shape[0], bias=False)
    layer.weight = nn.Parameter(w.clone())
    layer.settings = NVFP4Settings(torch.Generator().manual_seed(seed), hadamard_seed=11)
    return layer


def _unit_scaled(x: torch.Tensor, mode: str = "rtn", block_2d: bool = False, rand=None) -> torch.Tensor:
    """The reference's decoded E2M1 codes times their E4M3 block scales, without the tensor scale."""
    q = ref.quantize(x, mode, block_2d, rand=rand)
    return ref.dequantize(dataclasses.replace(q, tensor_scale=torch.ones_like(q.tensor_scale)))


@pytest.mark.parametrize("block_2d", [False, True])
@pytest.mark.parametrize("compiled", [False, True])
def test_gemm_operands_are_the_exact_block_scaled_values_in_bf16(block_2d, compiled):
    x, _, _ = _operands()
    x2 = x.reshape(-1, x.shape[-1])
    op = nvfp4_operand(x2, "rtn", block_2d, compiled=compiled)
    expected = _unit_scaled(x2, "rtn", block_2d)
    assert op.values.dtype == torch.bfloat16
    assert torch.equal(op.values.float(), expected)  # exact: <= 6 significant bits fit bf16's 8
    assert torch.equal(op.scale, ref.tensor_scale(x2))


def _assert_bf16_product(got: torch.Tensor, exact: torch.Tensor) -> None:
    """``got`` is ``exact`` up to the bf16 rounding of the GEMM output (2^-8 relative, then fp32)."""
    assert torch.all((got - exact).abs() <= exact.abs() * 2.0**-7 + 1e-6)


def test_nvfp4_forward_is_the_matmul_of_quantised_operands():
    x, w, _ = _operands()
    y = _nvfp4_layer(w)(x)
    x2 = x.reshape(-1, x.shape[-1])
    exact = ref.fake_quantize(x2, "rtn").double() @ ref.fake_quantize(w, "rtn", block_2d=True).double().t()
    _assert_bf16_product(y.reshape(-1, w.shape[0]).double(), exact)
    assert not torch.allclose(y, x @ w.t(), atol=1e-3)  # it really is quantised


def test_nvfp4_backward_matches_the_explicit_three_gemm_reference():
    x, w, dy = _operands()
    layer = _nvfp4_layer(w)
    xg = x.clone().requires_grad_()
    state = layer.settings.generator.get_state()
    layer(xg).backward(dy)

    g = torch.Generator().manual_seed(0)
    g.set_state(state)  # the same uniforms, drawn in the same order as the layer draws them
    x2, dy2 = x.reshape(-1, 48), dy.reshape(-1, 32)
    wq = ref.fake_quantize(w, "rtn", block_2d=True).double()
    dgrad = ref.fake_quantize(dy2, "sr", rand=torch.rand(dy2.shape, generator=g)).double() @ wq
    dy_t, x_t = had.hadamard_transform(dy2.t(), 11), had.hadamard_transform(x2.t(), 11)
    assert dy_t.shape == (32, 48)  # 40 tokens padded to 48
    dy_q = ref.fake_quantize(dy_t, "sr", rand=torch.rand(dy_t.shape, generator=g)).double()
    wgrad = dy_q @ ref.fake_quantize(x_t).double().t()
    _assert_bf16_product(xg.grad.reshape(-1, 48).double(), dgrad)
    _assert_bf16_product(layer.weight.grad.double(), wgrad)
    # and the estimate is close to the true gradient (quantisation noise, not a wrong formula)
    true_dw = dy2.t() @ x2
    assert (layer.weight.grad - true_dw).norm() / true_dw.norm() < 0.25


def test_forward_and_backward_see_the_same_quantised_weight():
    _, w, _ = _operands()
    wq = ref.fake_quantize(w, "rtn", block_2d=True)
    assert torch.equal(ref.fake_quantize(w.t().contiguous(), "rtn", block_2d=True), wq.t())  # 16x16 tiles
    assert not torch.equal(ref.fake_quantize(w.t().contiguous(), "rtn").t(), ref.fake_quantize(w, "rtn"))
    x, _, dy = _operands()
    layer = _nvfp4_layer(w)
    out = layer(x.requires_grad_())
    saved_values = out.grad_fn.saved_tensors[1]  # what dgrad multiplies: the fprop operand itself
    assert torch.equal(saved_values.float(), _unit_scaled(w, "rtn", block_2d=True))


def test_hadamard_rotation_cancels_in_the_wgrad_product():
    x, _, dy = _operands()
    x2, dy2 = x.reshape(-1, 48), dy.reshape(-1, 32)
    rotated = had.hadamard_transform(dy2.t(), 3) @ had.hadamard_transform(x2.t(), 3).t()
    assert torch.allclose(rotated, dy2.t() @ x2, atol=1e-4)


def test_sr_makes_the_nvfp4_gradient_unbiased():
    x, w, dy = _operands()
    layer = _nvfp4_layer(w)
    grads = []
    for _ in range(64):
        xg = x.clone().requires_grad_()
        layer(xg).backward(dy)
        grads.append(xg.grad)
    mean_dx = torch.stack(grads).mean(0).reshape(-1, 48)
    expected = dy.reshape(-1, 32) @ ref.fake_quantize(w, "rtn", block_2d=True)
    single = (grads[0].reshape(-1, 48) - expected).norm()
    assert (mean_dx - expected).norm() < 0.3 * single  # averaging removes most of the rounding noise


def test_fp8_linear_uses_e4m3_forward_and_e5m2_gradients():
    x, w, dy = _operands()
    layer = FP8Linear(48, 32, bias=False)
    layer.weight = nn.Parameter(w.clone())
    xg = x.clone().requires_grad_()
    y = layer(xg)
    y.backward(dy)
    x2, dy2 = x.reshape(-1, 48), dy.reshape(-1, 32)
    assert torch.equal(y.reshape(-1, 32), fp8_fake_quantize(x2, E4M3) @ fp8_fake_quantize(w.t(), E4M3))
    assert torch.equal(xg.grad.reshape(-1, 48), fp8_fake_quantize(dy2, E5M2) @ fp8_fake_quantize(w, E4M3))
    assert torch.equal(layer.weight.grad, fp8_fake_quantize(dy2.t(), E5M2) @ fp8_fake_quantize(x2, E4M3))
    assert not torch.equal(fp8_fake_quantize(dy2, E5M2), fp8_fake_quantize(dy2, E4M3))


def test_fp8_scaled_mm_path_agrees_with_the_emulation():
    x, w, dy = _operands(tokens=32)
    results = []
    for scaled_mm in (False, True):
        layer = FP8Linear(48, 32, bias=False)
        layer.weight, layer.scaled_mm = nn.Parameter(w.clone()), scaled_mm
        xg = x.clone().requires_grad_()
        y = layer(xg)
        y.backward(dy)
        results.append((y, xg.grad, layer.weight.grad))
    for emulated, real in zip(*results, strict=True):
        assert torch.allclose(emulated, real, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("spec", "kept"), [(2, 2), (0, 0), (0.4, 2), (0.1, 1), (9, 5)])
def test_last_blocks_embeddings_and_head_stay_high_precision(spec, kept):
    assert high_precision_blocks(5, spec) == kept
    model = TransformerLM(model_config("tiny", vocab_size=512))
    weights = {name: p for name, p in model.named_parameters()}
    recipe = Recipe(PrecisionConfig(name="nvfp4", high_precision_last=spec), torch.device("cpu"))
    recipe.prepare(model)
    assert recipe.quantised_blocks == list(range(5 - kept))
    for index, block in enumerate(model.blocks):
        kinds = {type(m) for m in block.modules() if isinstance(m, nn.Linear)}
        assert kinds == ({NVFP4Linear} if index < 5 - kept else {nn.Linear})
    assert type(model.head) is nn.Linear and type(model.embed) is nn.Embedding
    assert all(p is weights[name] for name, p in model.named_parameters())  # the same parameters, adopted


def test_bf16_recipe_autocasts_and_fp32_does_not():
    model = TransformerLM(model_config("tiny", vocab_size=512, n_layers=2))
    idx = torch.randint(0, 512, (2, 8))
    for name, dtype in [("fp32", torch.float32), ("bf16", torch.bfloat16), ("nvfp4", torch.bfloat16)]:
        recipe = Recipe(PrecisionConfig(name=name), torch.device("cpu"))
        with recipe.autocast():
            assert model(idx).dtype == dtype

"""Precision recipes (``--precision``): fp32, bf16, fp8 and nvfp4, as one :class:`Recipe` object.

* ``fp32``: no autocast; the reference the others are compared with.
* ``bf16``: autocast to bfloat16 around the forward pass; fp32 master weights, fp32 norms and loss.
* ``fp8``: bf16 autocast, and every linear layer inside the quantised blocks runs its three GEMMs on
  FP8 operands with per-tensor current scaling: E4M3 for activations and weights, E5M2 for output
  gradients. ``torch._scaled_mm`` is used where it is fast (CUDA, compute capability >= 8.9); elsewhere
  the GEMMs are emulated by quantise-dequantise and an fp32 matmul, which gives the same products up to
  accumulation order.
* ``nvfp4``: the recipe of "Pretraining Large Language Models with NVFP4" (NVIDIA, 2025), emulated:
    fprop  y  = Q(x) @ Q2d(W)^T                           x: 1x16 blocks RTN, W: 16x16 blocks RTN
    dgrad  dx = Q_sr(dy) @ Q2d(W)                          the same quantised W as in fprop
    wgrad  dW = Q_sr(H(dy^T)) @ Q(H(x^T))^T                H: 16x16 random Hadamard along the tokens
  16x16 weight tiles quantise ``W`` and ``W^T`` identically, so the backward pass differentiates the
  function the forward pass computed. The Hadamard rotation spreads outliers over each 16-value block
  before the wgrad quantisation and cancels in the product (it is orthogonal). Stochastic rounding keeps
  the gradient unbiased. Embeddings, the head, norms, attention (softmax) and the last blocks stay in
  bf16. No CPU or pre-Blackwell GPU has FP4 GEMMs, so each operand is decoded to its E2M1 values times
  E4M3 block scales (exact in bf16), multiplied by a bf16 GEMM with fp32 accumulation, and the product
  scaled by both fp32 tensor scales: what an FP4 tensor core computes, up to summation order and the
  bf16 rounding of the product (see :class:`trainer.quantize.NVFP4Operand`).

Each recipe is applied to a freshly built model *before* the optimiser is created: it swaps
``nn.Linear`` modules for subclasses that keep the very same ``weight`` parameter, so checkpoints are
interchangeable between recipes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from kernels.dispatch import hadamard_16
from kernels.nvfp4_reference import Mode
from trainer.choices import Precision
from trainer.quantize import NVFP4Operand, fp8_fake_quantize, fp8_quantize, nvfp4_mm, nvfp4_operand

PrecisionName = Precision  # the names live in trainer.choices, which the CLI reads without torch
Fp8Backend = Literal["auto", "emulated", "scaled_mm"]
E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2


class PrecisionConfig(BaseModel):
    """Which recipe, and how much of the model it leaves in bf16."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PrecisionName = "fp32"
    high_precision_last: float = Field(
        default=2,
        ge=0,
        description="blocks at the end kept in bf16: a count (>= 1) or a fraction of the blocks (< 1)",
    )
    hadamard_seed: int = Field(default=0, ge=0, description="seed of the random signs of the wgrad Hadamard")
    fp8_backend: Fp8Backend = "auto"


def high_precision_blocks(n_layers: int, spec: float) -> int:
    """Number of trailing blocks left unquantised: ``spec`` blocks, or ceil(spec * n) for a fraction."""
    count = math.ceil(spec * n_layers) if 0 < spec < 1 else int(spec)
    return min(count, n_layers)


def _out_dtype(x: torch.Tensor) -> torch.dtype:
    """What an ``nn.Linear`` would return here: the autocast dtype inside autocast, else x's dtype."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


@dataclass(frozen=True)
class NVFP4Settings:
    """What an NVFP4 linear needs besides its operands: the SR generator (shared by the recipe, so its
    state is checkpointed once), the wgrad Hadamard seed, and whether to use the compiled quantiser."""

    generator: torch.Generator | None = None
    hadamard_seed: int = 0
    compiled: bool = False

    def quantize(self, x: torch.Tensor, mode: Mode, block_2d: bool = False) -> NVFP4Operand:
        generator = self.generator if mode == "sr" else None
        return nvfp4_operand(x, mode, block_2d, generator, compiled=self.compiled)


class NVFP4LinearFunction(torch.autograd.Function):
    """``y = x @ W^T`` with NVFP4 operands in all three GEMMs (see the module doc for the recipe)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, settings: NVFP4Settings) -> torch.Tensor:
        out_dtype = _out_dtype(x)
        with torch.autocast(x.device.type, enabled=False):
            x2 = x.reshape(-1, x.shape[-1]).float()
            wq = settings.quantize(weight.detach().float(), "rtn", block_2d=True)
            y = nvfp4_mm(settings.quantize(x2, "rtn"), wq.t())  # fprop
        ctx.save_for_backward(x2, wq.values, wq.scale)
        ctx.settings = settings
        ctx.x_shape, ctx.x_dtype, ctx.w_dtype = x.shape, x.dtype, weight.dtype
        return y.reshape(*x.shape[:-1], weight.shape[0]).to(out_dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x2, w_values, w_scale = ctx.saved_tensors
        with torch.autocast(grad_out.device.type, enabled=False):
            dy = grad_out.reshape(-1, grad_out.shape[-1]).float()
            dx = nvfp4_mm(ctx.settings.quantize(dy, "sr"), NVFP4Operand(w_values, w_scale))  # dgrad
            dw = nvfp4_wgrad(dy, x2, ctx.settings)
        return dx.reshape(ctx.x_shape).to(ctx.x_dtype), dw.to(ctx.w_dtype), None


def nvfp4_wgrad(dy: torch.Tensor, x: torch.Tensor, settings: NVFP4Settings) -> torch.Tensor:
    """dW = dy^T @ x with both operands Hadamard-rotated along the token (reduction) dim, then NVFP4.

    Both are zero-padded to the same multiple of 16 tokens by the transform, and the padding lanes
    multiply each other, so the rotation cancels exactly before quantisation.
    """
    dy_t = hadamard_16(dy.t().contiguous(), settings.hadamard_seed)
    x_t = hadamard_16(x.t().contiguous(), settings.hadamard_seed)
    return nvfp4_mm(settings.quantize(dy_t, "sr"), settings.quantize(x_t, "rtn").t())


def use_scaled_mm(device: torch.device, backend: Fp8Backend) -> bool:
    """Real FP8 GEMMs only where they beat fp32 (on CPU ``_scaled_mm`` exists but is slower)."""
    if backend != "auto":
        return backend == "scaled_mm"
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)


def fp8_matmul(
    a: torch.Tensor, a_dtype: torch.dtype, b: torch.Tensor, b_dtype: torch.dtype, scaled_mm: bool
) -> torch.Tensor:
    """``a @ b`` (2D, fp32 out) on FP8 operands with per-tensor current scales."""
    if not scaled_mm:
        return fp8_fake_quantize(a, a_dtype) @ fp8_fake_quantize(b, b_dtype)
    qa, sa = fp8_quantize(a, a_dtype)
    qb, sb = fp8_quantize(b.t().contiguous(), b_dtype)  # _scaled_mm wants its second operand column-major
    return torch._scaled_mm(qa.contiguous(), qb.t(), scale_a=sa, scale_b=sb, out_dtype=torch.float32)


class FP8LinearFunction(torch.autograd.Function):
    """``y = x @ W^T`` with E4M3 forward operands and E5M2 output gradients in all three GEMMs."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, scaled_mm: bool) -> torch.Tensor:
        out_dtype = _out_dtype(x)
        with torch.autocast(x.device.type, enabled=False):
            x2 = x.reshape(-1, x.shape[-1]).float()
            y = fp8_matmul(x2, E4M3, weight.float().t(), E4M3, scaled_mm)  # fprop
        ctx.save_for_backward(x2, weight)
        ctx.scaled_mm, ctx.x_shape, ctx.x_dtype = scaled_mm, x.shape, x.dtype
        return y.reshape(*x.shape[:-1], weight.shape[0]).to(out_dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x2, weight = ctx.saved_tensors
        with torch.autocast(grad_out.device.type, enabled=False):
            dy = grad_out.reshape(-1, grad_out.shape[-1]).float()
            dx = fp8_matmul(dy, E5M2, weight.float(), E4M3, ctx.scaled_mm)  # dgrad
            dw = fp8_matmul(dy.t(), E5M2, x2, E4M3, ctx.scaled_mm)  # wgrad
        return dx.reshape(ctx.x_shape).to(ctx.x_dtype), dw.to(weight.dtype), None


class NVFP4Linear(nn.Linear):
    """An ``nn.Linear`` (no bias) whose GEMMs follow the NVFP4 recipe; same ``weight`` parameter."""

    settings: NVFP4Settings = NVFP4Settings()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return NVFP4LinearFunction.apply(x, self.weight, self.settings)


class FP8Linear(nn.Linear):
    """An ``nn.Linear`` (no bias) whose GEMMs run on FP8 operands; same ``weight`` parameter."""

    scaled_mm: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return FP8LinearFunction.apply(x, self.weight, self.scaled_mm)


def _swap_linear(old: nn.Linear, cls: type[nn.Linear], **attrs: Any) -> nn.Linear:
    """A ``cls`` instance that adopts ``old.weight`` itself (not a copy), so optimiser state still applies."""
    if old.bias is not None:
        raise ValueError("quantised linears are bias-free; the proxy model has no biases")
    new = cls(old.in_features, old.out_features, bias=False, device="meta")
    new.weight = old.weight
    for key, value in attrs.items():
        setattr(new, key, value)
    return new


class Recipe:
    """A precision recipe bound to a device: model preparation, autocast context and SR generator state."""

    def __init__(
        self, config: PrecisionConfig, device: torch.device, seed: int = 0, compile: bool = False
    ) -> None:
        self.config, self.device, self.compile = config, device, compile
        self.generator = torch.Generator(device=device).manual_seed(seed + 0x5EED)  # SR only
        self.quantised_blocks: list[int] = []

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return None if self.name == "fp32" else torch.bfloat16

    def prepare(self, model: nn.Module) -> nn.Module:
        """Swap the linears of all blocks but the last few for quantised ones (fp8 / nvfp4 only)."""
        if self.name not in ("fp8", "nvfp4"):
            return model
        blocks = model.blocks
        keep = high_precision_blocks(len(blocks), self.config.high_precision_last)
        self.quantised_blocks = list(range(len(blocks) - keep))
        for index in self.quantised_blocks:
            for parent in blocks[index].modules():
                for child_name, child in list(parent.named_children()):
                    if type(child) is nn.Linear:
                        setattr(parent, child_name, self._quantised(child))
        return model

    def _quantised(self, linear: nn.Linear) -> nn.Linear:
        if self.name == "nvfp4":
            settings = NVFP4Settings(self.generator, self.config.hadamard_seed, self.compile)
            return _swap_linear(linear, NVFP4Linear, settings=settings)
        return _swap_linear(linear, FP8Linear, scaled_mm=use_scaled_mm(self.device, self.config.fp8_backend))

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """bf16 autocast for every recipe but fp32 (quantised linears disable it inside themselves)."""
        if self.autocast_dtype is None:
            yield
            return
        with torch.autocast(self.device.type, dtype=self.autocast_dtype):
            yield

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The SR generator's state: part of a checkpoint, or a resumed nvfp4 run would round differently."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])

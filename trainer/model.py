"""A small modern decoder-only transformer: the proxy LM that scores a mixture.

Pre-norm RMSNorm blocks, rotary positions, QK-norm (keeps attention logits bounded, which matters once
matmuls run in 4 bits), a ReLU² or SwiGLU MLP, an untied output head and no biases. Every linear layer
inside a block is an ``nn.Linear`` so a precision recipe can swap it for a quantised one while keeping
the same parameter (and so the same checkpoint keys).

Two switches serve the OSP recipe ("Outlier-Safe Pre-Training for Robust 4-Bit Quantization", Park et
al. 2025; see ``trainer.train.TRAIN_RECIPES``): ``norm="single_scale"`` gives every RMSNorm one learnable
scalar instead of a per-channel gain (a per-channel gain can grow a few channels into the outliers
that ruin 4-bit quantisation), and ``embed_proj`` puts a learnable d x d projection after the token
embedding (the embedding is trained by AdamW, whose per-coordinate steps also breed outlier channels;
the projection, a matrix Muon trains, mixes them away).

Preset sizes are counted without the embedding and head (the usual convention: RegMix's "1M" proxies,
Chinchilla's N), because those two scale with the vocabulary, not with the model.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

MLPKind = Literal["relu2", "swiglu"]
PresetName = Literal["tiny", "small", "base"]
NormKind = Literal["rms", "single_scale"]

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 128, "n_layers": 5, "n_heads": 4},  # ~0.98M non-embedding parameters
    "small": {"d_model": 320, "n_layers": 8, "n_heads": 5},  # ~9.8M
    "base": {"d_model": 768, "n_layers": 14, "n_heads": 12},  # ~99M, for a GPU
}
NOMINAL_PARAMS = {"tiny": 1_000_000, "small": 10_000_000, "base": 100_000_000}


class ModelConfig(BaseModel):
    """Architecture; validated so a bad shape fails at config time, not in the first matmul."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = Field(gt=0)
    d_model: int = Field(gt=0)
    n_layers: int = Field(gt=0)
    n_heads: int = Field(gt=0)
    d_ff: int | None = Field(
        default=None, gt=0, description="MLP width; default 4*d (relu2) or 8/3*d (swiglu)"
    )
    mlp: MLPKind = "relu2"
    max_seq_len: int = Field(default=1024, gt=0)
    rope_theta: float = Field(default=10_000.0, gt=0)
    norm_eps: float = Field(default=1e-6, gt=0)
    qk_norm: bool = True
    norm: NormKind = Field(default="rms", description="per-channel RMSNorm gain, or one scalar per norm")
    embed_proj: bool = Field(default=False, description="a learnable d x d projection after the embedding")
    init_std: float = Field(default=0.02, gt=0)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for rotary positions")
        return self

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def ff_width(self) -> int:
        """MLP hidden width; the SwiGLU default keeps parameters equal to a 4x ReLU² MLP, rounded to 16."""
        if self.d_ff is not None:
            return self.d_ff
        if self.mlp == "relu2":
            return 4 * self.d_model
        return 16 * math.ceil(8 * self.d_model / 3 / 16)


def model_config(preset: PresetName, vocab_size: int, **overrides: Any) -> ModelConfig:
    """A preset with any field overridden; unknown presets and fields are rejected by name."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return ModelConfig(**{**PRESETS[preset], "vocab_size": vocab_size, **overrides})


class RMSNorm(nn.Module):
    """RMSNorm computed in fp32 whatever the autocast dtype: norms stay high precision in every recipe.

    ``single_scale``: one gain shared by every channel (OSP's single-scale RMSNorm), so the norm can
    rescale the stream but never single out a channel."""

    def __init__(self, dim: int, eps: float, single_scale: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1 if single_scale else dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight.float()).to(x.dtype)


def make_norm(cfg: ModelConfig, dim: int) -> RMSNorm:
    return RMSNorm(dim, cfg.norm_eps, single_scale=cfg.norm == "single_scale")


class Rotary(nn.Module):
    """Rotary position embedding (rotate-half form) with cached fp32 cos/sin tables."""

    def __init__(self, head_dim: int, max_seq_len: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, T, D)."""
        seq_len = x.shape[-2]
        cos, sin = self.cos[:seq_len].to(x.dtype), self.sin[:seq_len].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.q_norm = make_norm(cfg, cfg.head_dim) if cfg.qk_norm else nn.Identity()
        self.k_norm = make_norm(cfg, cfg.head_dim) if cfg.qk_norm else nn.Identity()
        self.rotary = Rotary(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq_len, width = x.shape
        q, k, v = self.qkv(x).view(batch, seq_len, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.rotary(self.q_norm(q)), self.rotary(self.k_norm(k))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(batch, seq_len, width))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.kind = cfg.mlp
        hidden = cfg.ff_width
        self.up = nn.Linear(cfg.d_model, hidden * (2 if cfg.mlp == "swiglu" else 1), bias=False)
        self.down = nn.Linear(hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.kind == "swiglu":
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate) * value
        else:
            h = F.relu(h).square()
        return self.down(h)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = make_norm(cfg, cfg.d_model)
        self.attn = Attention(cfg)
        self.mlp_norm = make_norm(cfg, cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class TransformerLM(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.embed_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False) if cfg.embed_proj else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = make_norm(cfg, cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, std) everywhere, output projections scaled by 1/sqrt(2L) so the residual stream's
        variance does not grow with depth (GPT-2); norms start at one, the embedding projection at the
        identity (the model starts as the one without it)."""
        std = self.cfg.init_std
        for name, param in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(param)
            elif name == "embed_proj.weight":
                nn.init.eye_(param)
            elif name.endswith(("attn.out.weight", "mlp.down.weight")):
                nn.init.normal_(param, std=std / math.sqrt(2 * self.cfg.n_layers))
            else:
                nn.init.normal_(param, std=std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> logits (B, T, V)."""
        if idx.shape[1] > self.cfg.max_seq_len:
            raise ValueError(f"sequence of {idx.shape[1]} tokens exceeds max_seq_len {self.cfg.max_seq_len}")
        x = self.embed(idx)
        if self.embed_proj is not None:
            x = self.embed_proj(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy in fp32 (the softmax over the vocabulary stays high precision in every recipe)."""
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction=reduction)


def count_parameters(model: nn.Module, embeddings: bool = False) -> int:
    """Parameter count; by default without the token embedding and the output head (see module doc)."""
    skip = set() if embeddings else {"embed.weight", "head.weight"}
    return sum(p.numel() for name, p in model.named_parameters() if name not in skip)


def preset_parameter_count(preset: PresetName, vocab_size: int = 8192, **overrides: Any) -> int:
    """Non-embedding parameters of a preset, counted on the meta device (no memory, even for ``base``)."""
    with torch.device("meta"):
        return count_parameters(TransformerLM(model_config(preset, vocab_size, **overrides)))

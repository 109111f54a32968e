"""Optimisers and the learning-rate schedule of the proxy trainer.

AdamW is the default. Muon (momentum + Newton-Schulz orthogonalisation, Keller Jordan 2024) is an option
for the 2D weights inside the blocks (and the embedding projection of the OSP recipe), with AdamW for
embeddings, head and norms, as Muon is meant to be used. Every param group remembers its ``base_lr`` so
one schedule factor drives all optimisers.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

OptimizerName = Literal["adamw", "muon"]
ScheduleName = Literal["cosine", "wsd"]


def lr_factor(
    step: int, total: int, warmup: int, schedule: ScheduleName, min_ratio: float, decay_fraction: float
) -> float:
    """Multiplier of the base learning rate for update ``step`` (0-based) of ``total``.

    Linear warmup to 1 over ``warmup`` updates, then cosine to ``min_ratio`` at the last update, or
    warmup-stable-decay: flat until the last ``decay_fraction`` of the run, then linear to ``min_ratio``
    (WSD lets a run be extended or branched before its decay without restarting).
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        progress = (step - warmup + 1) / max(1, total - warmup)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    decay_start = max(warmup, total - round(decay_fraction * total))
    if step < decay_start:
        return 1.0
    progress = (step - decay_start + 1) / max(1, total - decay_start)
    return 1.0 - (1 - min_ratio) * min(progress, 1.0)


def newton_schulz(grad: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximate orthogonalisation U V^T of ``grad`` with the quintic iteration tuned for Muon."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = grad.float()
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.t()
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.t()
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.t() if transposed else x


class Muon(torch.optim.Optimizer):
    """Muon for 2D weights: Nesterov momentum, orthogonalised update, decoupled weight decay."""

    def __init__(
        self,
        params: list[nn.Parameter],
        lr: float = 0.02,
        momentum: float = 0.95,
        weight_decay: float = 0.0,
        ns_steps: int = 5,
    ) -> None:
        super().__init__(
            params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "ns_steps": ns_steps}
        )

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                buf = self.state[param].setdefault("momentum_buffer", torch.zeros_like(param))
                buf.mul_(group["momentum"]).add_(param.grad)
                update = newton_schulz(param.grad.add(buf, alpha=group["momentum"]), group["ns_steps"])
                scale = max(1.0, param.shape[0] / param.shape[1]) ** 0.5
                param.mul_(1 - group["lr"] * group["weight_decay"])
                param.add_(update.to(param.dtype), alpha=-group["lr"] * scale)


MUON_MODULES = ("blocks.", "embed_proj.")  # hidden matrices; never the embedding or the head


def _decays(name: str, param: nn.Parameter) -> bool:
    """Weight decay on matrices only; never on norms or the token embedding (rows of rare tokens)."""
    return param.ndim >= 2 and not name.startswith("embed.")


def build_optimizers(
    model: nn.Module,
    name: OptimizerName,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    muon_lr: float,
) -> list[torch.optim.Optimizer]:
    """AdamW over everything, or Muon over the blocks' matrices plus AdamW over the rest."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    muon_params = [p for n, p in named if name == "muon" and n.startswith(MUON_MODULES) and p.ndim == 2]
    muon_ids = {id(p) for p in muon_params}
    rest = [(n, p) for n, p in named if id(p) not in muon_ids]
    groups = [
        {"params": [p for n, p in rest if _decays(n, p)], "weight_decay": weight_decay},
        {"params": [p for n, p in rest if not _decays(n, p)], "weight_decay": 0.0},
    ]
    optimizers: list[torch.optim.Optimizer] = [
        torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, eps=1e-8)
    ]
    if muon_params:
        optimizers.append(Muon(muon_params, lr=muon_lr, weight_decay=weight_decay))
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["base_lr"] = group["lr"]
    return optimizers


def set_lr(optimizers: list[torch.optim.Optimizer], factor: float) -> float:
    """Apply the schedule factor to every group; returns the AdamW learning rate (the one logged)."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
    return optimizers[0].param_groups[0]["lr"]

"""Activation statistics: how heavy-tailed the residual stream is, the property 4-bit quantisation hates.

Excess kurtosis (fourth standardised moment minus 3) is 0 for a Gaussian, -1.2 for a uniform and grows
without bound when a few channels carry huge values: the "outlier features" that OSP (Outlier-Safe
Pre-Training, Park et al. 2025) reports as the cause of 4-bit loss, and that its recipe suppresses.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from trainer.precision import Recipe


def excess_kurtosis(x: torch.Tensor) -> float:
    """Excess kurtosis of every value of ``x`` taken as one sample (population moments, in fp64)."""
    values = x.detach().flatten().double()
    centred = values - values.mean()
    variance = centred.square().mean()
    if variance == 0:
        return float("nan")
    return float(centred.pow(4).mean() / variance.square() - 3.0)


def block_output_kurtosis(model: nn.Module, recipe: Recipe, batches: Iterable[torch.Tensor]) -> list[float]:
    """Excess kurtosis of each block's output (the residual stream after it), over all the given input
    batches (B, T) together; no gradients, the model's training flag restored."""
    outputs: list[list[torch.Tensor]] = [[] for _ in model.blocks]
    hooks = [
        block.register_forward_hook(lambda _m, _i, out, k=index: outputs[k].append(out.detach().float()))
        for index, block in enumerate(model.blocks)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                with recipe.autocast():
                    model(batch)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return [excess_kurtosis(torch.cat([o.flatten() for o in layer])) for layer in outputs]

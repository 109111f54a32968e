"""Sampling text from a trained proxy: a prompt's continuation, token by token (top-k, temperature).

Why a proxy that is only ever scored needs it: metadata conditioning (MeCo) claims a model trained with
`URL: site` prefixes can be steered by that prefix at inference; seeing what it writes after each site's
prefix is the direct test. Deterministic for a seed (a private torch generator), no cache: the prompts
are short and the continuations a few dozen tokens.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainer.precision import Recipe


@torch.no_grad()
def sample_continuation(
    model: nn.Module,
    recipe: Recipe,
    prompt: np.ndarray,
    n_tokens: int,
    seq_len: int,
    seed: int,
    vocab_size: int,
    temperature: float = 0.8,
    top_k: int = 40,
) -> np.ndarray:
    """`n_tokens` ids following `prompt` (the model sees at most its last `seq_len` tokens); only ids
    below `vocab_size` are drawn (the embedding is padded past the tokenizer's vocabulary)."""
    if len(prompt) == 0 or n_tokens <= 0 or temperature <= 0 or top_k <= 0:
        raise ValueError("sampling needs a non-empty prompt, n_tokens > 0, temperature > 0 and top_k > 0")
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    tokens = torch.as_tensor(prompt, dtype=torch.long, device=device).unsqueeze(0)
    was_training = model.training
    model.eval()
    for _ in range(n_tokens):
        with recipe.autocast():
            logits = model(tokens[:, -seq_len:])[0, -1, :vocab_size].float() / temperature
        kept, index = torch.topk(logits, min(top_k, logits.numel()))
        choice = torch.multinomial(torch.softmax(kept, dim=-1).cpu(), 1, generator=generator)
        tokens = torch.cat([tokens, index[choice].view(1, 1).to(device)], dim=1)
    model.train(was_training)
    return tokens[0, len(prompt) :].cpu().numpy()

"""Sampling continuations: a model that learned a cycle continues it; a seed gives the same draw; only
real vocabulary ids are drawn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.generate import sample_continuation
from trainer.model import TransformerLM, lm_loss, model_config
from trainer.precision import PrecisionConfig, Recipe

VOCAB, CYCLE = 24, 7  # the embedding is padded to 32 rows; ids 24-31 are never real tokens


def learned_cycle() -> TransformerLM:
    """A small model trained to continue 0, 1, ..., 6, 0, 1, ... from any offset."""
    torch.manual_seed(0)
    model = TransformerLM(model_config("tiny", vocab_size=32, d_model=32, n_layers=1, n_heads=2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    windows = torch.stack([torch.arange(start, start + 17) % CYCLE for start in range(CYCLE)])
    for _ in range(150):
        loss = lm_loss(model(windows[:, :-1]), windows[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model


def test_a_learned_cycle_is_continued_and_a_seed_repeats_its_draw():
    model = learned_cycle()
    recipe = Recipe(PrecisionConfig(name="fp32"), torch.device("cpu"))
    prompt = np.array([3, 4, 5], dtype=np.int64)
    drawn = sample_continuation(model, recipe, prompt, 10, seq_len=16, seed=1, vocab_size=VOCAB, top_k=3)
    assert drawn.tolist() == [(6 + i) % CYCLE for i in range(10)]
    hot = dict(seq_len=16, vocab_size=VOCAB, temperature=5.0, top_k=VOCAB)
    first = sample_continuation(model, recipe, prompt, 30, seed=2, **hot)
    assert np.array_equal(first, sample_continuation(model, recipe, prompt, 30, seed=2, **hot))
    assert not np.array_equal(first, sample_continuation(model, recipe, prompt, 30, seed=3, **hot))
    assert first.max() < VOCAB  # padded rows of the embedding are never drawn
    assert model.training  # the model is left in the mode it was in


def test_bad_sampling_settings_are_refused():
    model = learned_cycle()
    recipe = Recipe(PrecisionConfig(name="fp32"), torch.device("cpu"))
    with pytest.raises(ValueError, match="non-empty prompt"):
        sample_continuation(model, recipe, np.zeros(0, dtype=np.int64), 5, 16, 0, VOCAB)

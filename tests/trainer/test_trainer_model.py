"""The proxy transformer: preset sizes, validated configs, causality, parameter layout."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from trainer.model import (
    NOMINAL_PARAMS,
    PRESETS,
    TransformerLM,
    count_parameters,
    lm_loss,
    model_config,
    preset_parameter_count,
)


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("mlp", ["relu2", "swiglu"])
def test_presets_are_near_their_nominal_size(preset, mlp):
    count = preset_parameter_count(preset, mlp=mlp)
    assert abs(count - NOMINAL_PARAMS[preset]) / NOMINAL_PARAMS[preset] < 0.05, count


def test_meta_count_matches_a_real_model_and_excludes_embeddings():
    model = TransformerLM(model_config("tiny", vocab_size=512))
    assert count_parameters(model) == preset_parameter_count("tiny", 512)
    assert count_parameters(model, embeddings=True) - count_parameters(model) == 2 * 512 * 128  # untied


def test_head_is_untied_and_every_block_linear_is_bias_free():
    model = TransformerLM(model_config("tiny", vocab_size=512, n_layers=2))
    assert model.head.weight.data_ptr() != model.embed.weight.data_ptr()
    linears = [m for m in model.blocks.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2 * 4 and all(m.bias is None for m in linears)
    assert all(isinstance(b.attn.q_norm, torch.nn.Module) for b in model.blocks)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_heads": 3}, "not divisible"),
        ({"d_model": 96, "n_heads": 32}, "must be even"),
        ({"mlp": "gelu"}, "relu2"),
        ({"dropout": 0.1}, "Extra inputs"),
    ],
)
def test_bad_configs_fail_with_the_field_named(overrides, message):
    with pytest.raises(ValidationError, match=message):
        model_config("tiny", vocab_size=512, **overrides)
    with pytest.raises(ValueError, match="unknown model preset"):
        model_config("huge", vocab_size=512)


@pytest.mark.parametrize("mlp", ["relu2", "swiglu"])
def test_causal_a_future_token_never_changes_earlier_logits(mlp):
    torch.manual_seed(0)
    model = TransformerLM(model_config("tiny", vocab_size=512, n_layers=2, mlp=mlp))
    idx = torch.randint(0, 512, (2, 24))
    changed = idx.clone()
    changed[:, 15] = (changed[:, 15] + 1) % 512
    with torch.no_grad():
        a, b = model(idx), model(changed)
    assert torch.equal(a[:, :15], b[:, :15])
    assert not torch.allclose(a[:, 15:], b[:, 15:])


def test_initial_loss_is_near_uniform_and_too_long_inputs_fail():
    torch.manual_seed(0)
    model = TransformerLM(model_config("tiny", vocab_size=512, n_layers=2, max_seq_len=32))
    idx = torch.randint(0, 512, (4, 32))
    loss = lm_loss(model(idx)[:, :-1], idx[:, 1:])
    assert abs(loss.item() - torch.log(torch.tensor(512.0)).item()) < 0.1
    with pytest.raises(ValueError, match="exceeds max_seq_len"):
        model(torch.zeros(1, 33, dtype=torch.long))

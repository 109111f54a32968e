"""The outlier-safe recipe (OSP): single-scale norms, the embedding projection trained by Muon, a tiny
run that learns, and the kurtosis its benchmark reports."""

from __future__ import annotations

import json

import pytest
import torch

from curate.errors import ConfigError
from trainer.activations import block_output_kurtosis, excess_kurtosis
from trainer.model import RMSNorm, TransformerLM, model_config
from trainer.optim import Muon
from trainer.precision import PrecisionConfig, Recipe
from trainer.train import METRICS, Run, parse_train_config, train

SMALL_MODEL = {"d_model": 64, "n_layers": 2, "n_heads": 2}


def _config(token_dir, out, **overrides):
    fields = {
        "token_dir": token_dir, "out_dir": out, "model": SMALL_MODEL, "batch_size": 8, "seq_len": 32,
        "lr": 1e-2, "steps": 30, "threads": 1, "progress": False, "precision": {"name": "fp32"},
        "recipe": "osp", "optimizer": "muon",
    }  # fmt: skip
    return parse_train_config(**{**fields, **overrides})


def test_single_scale_norm_has_one_parameter_per_norm():
    model = TransformerLM(model_config("tiny", 256, norm="single_scale"))
    norms = [m for m in model.modules() if isinstance(m, RMSNorm)]
    assert len(norms) == 5 * 4 + 1  # attn, mlp, q and k norms per block, and the final norm
    assert all(norm.weight.numel() == 1 for norm in norms)
    x = torch.randn(2, 3, 128)
    assert model.norm(x).shape == x.shape
    per_channel = TransformerLM(model_config("tiny", 256))
    assert per_channel.norm.weight.numel() == 128


def test_osp_recipe_builds_its_model_and_muon_trains_the_projection(token_dir, tmp_path):
    run = Run(_config(token_dir, tmp_path))
    assert run.model_cfg.norm == "single_scale" and run.model_cfg.embed_proj
    assert torch.equal(run.model.embed_proj.weight, torch.eye(64))  # starts as the model without it
    muon = next(opt for opt in run.optimizers if isinstance(opt, Muon))
    assert any(p is run.model.embed_proj.weight for group in muon.param_groups for p in group["params"])
    assert not any(p is run.model.embed.weight for group in muon.param_groups for p in group["params"])


def test_osp_recipe_trains_and_lowers_the_loss(token_dir, tmp_path):
    summary = train(_config(token_dir, tmp_path))
    rows = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    first, last = sum(r["loss"] for r in rows[:5]) / 5, sum(r["loss"] for r in rows[-5:]) / 5
    assert summary["finished"] and last < first - 0.3, (first, last)


def test_osp_refuses_another_optimizer(token_dir, tmp_path):
    with pytest.raises(ConfigError, match="recipe osp trains with muon"):
        _config(token_dir, tmp_path, optimizer="adamw")


def test_excess_kurtosis_of_known_distributions():
    generator = torch.Generator().manual_seed(0)
    assert excess_kurtosis(torch.randn(400_000, generator=generator)) == pytest.approx(0.0, abs=0.05)
    assert excess_kurtosis(torch.rand(400_000, generator=generator)) == pytest.approx(-1.2, abs=0.02)
    laplace = torch.distributions.Laplace(0.0, 1.0).sample((400_000,))
    assert excess_kurtosis(laplace) == pytest.approx(3.0, abs=0.2)
    outlier_channel = torch.randn(1000, 64, generator=generator)
    outlier_channel[:, 3] *= 30  # one huge channel: the pattern OSP removes
    assert excess_kurtosis(outlier_channel) > 20


def test_block_output_kurtosis_reports_every_block():
    model = TransformerLM(model_config("tiny", 256, **SMALL_MODEL))
    recipe = Recipe(PrecisionConfig(name="fp32"), torch.device("cpu"))
    values = block_output_kurtosis(model, recipe, [torch.randint(0, 256, (2, 16))])
    assert len(values) == 2 and all(v == v for v in values)
    assert not model.blocks[0]._forward_hooks  # hooks removed

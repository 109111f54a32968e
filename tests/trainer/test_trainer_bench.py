"""`curate bench train` figures: the JSON carries what BENCHMARKS.md records (a smoke run, not a timing)."""

from __future__ import annotations

import math

from bench.train_speed import bench_train


def test_bench_reports_every_recipe_against_bf16_and_a_plain_loop(token_dir, tmp_path):
    small = {"d_model": 64, "n_layers": 3, "n_heads": 2}
    figures = bench_train(tmp_path, token_dir, tokens=2 * 4 * 32, batch_size=4, seq_len=32, threads=1,
                          max_eval_tokens_per_domain=256, model=small)  # fmt: skip
    assert figures["steps"] == 2 and set(figures["recipes"]) == {"fp32", "bf16", "fp8", "nvfp4"}
    for recipe in figures["recipes"].values():
        assert recipe["tokens_per_s"] > 0 and recipe["step_time_ratio_vs_bf16"] > 0
        assert math.isfinite(recipe["final_eval_loss"]) and math.isfinite(recipe["final_eval_bpb"])
    assert figures["recipes"]["bf16"]["step_time_ratio_vs_bf16"] == 1.0
    assert figures["framework_vs_plain_fp32"] > 0 and figures["nvfp4_eval_loss_vs_bf16"] > 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["bf16", "fp32", "fp8", "nvfp4"]

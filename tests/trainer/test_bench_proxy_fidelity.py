"""`curate bench proxy-fidelity` on a tiny setting: the invariants its figures rest on (one evaluation
suite for every run, paired seeds, rankings that are permutations of the mixtures, the token ratio),
and the agreement statistics on cases worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.filtering_pool import FilterModels
from bench.proxy_fidelity import (
    LARGE,
    SMALL,
    FidelitySettings,
    ModelSize,
    bench_proxy_fidelity,
    fidelity,
    format_table,
    mixture_catalog,
    one_suite,
    pairwise_agreement,
    parse_size,
    spearman,
)
from curate.errors import ConfigError


def test_spearman_and_pairwise_agreement_on_known_rankings() -> None:
    truth = [1.0, 2.0, 3.0, 4.0]
    one_swap = [1.0, 3.0, 2.0, 4.0]  # Spearman 1 - 6 * 2 / (4 * 15) = 0.8; 5 of 6 pairs ordered alike
    assert spearman(truth, one_swap) == pytest.approx(0.8)
    assert pairwise_agreement(truth, one_swap) == pytest.approx(5 / 6)
    assert spearman(truth, truth[::-1]) == pytest.approx(-1.0)
    assert pairwise_agreement(truth, truth[::-1]) == 0.0
    assert pairwise_agreement(truth, [10.0, 20.0, 30.0, 40.0]) == 1.0  # ranks, not values
    assert pairwise_agreement([1.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(2 / 3)  # a one-sided tie


def test_pairs_say_whether_the_small_models_difference_is_beyond_seed_noise() -> None:
    def runs(scores: dict[str, list[float]]) -> dict[str, list[dict[str, float]]]:
        return {
            name: [{"seed": s, "score": v} for s, v in enumerate(values)] for name, values in scores.items()
        }

    small = {"a": [1.00, 1.10, 1.20], "b": [2.00, 2.12, 2.19], "c": [1.05, 1.02, 1.31]}
    large = {"a": [3.0, 3.1, 3.2], "b": [2.0, 2.05, 2.25], "c": [3.5, 3.6, 3.7]}
    figures = fidelity({"small": runs(small), "large": runs(large)})
    assert figures["ranking"] == {"small": ["a", "c", "b"], "large": ["b", "a", "c"]}
    pairs = {(p["a"], p["b"]): p for p in figures["pair_table"]}
    assert pairs[("a", "b")]["small_significant"] and not pairs[("a", "b")]["agree"]
    assert not pairs[("a", "c")]["small_significant"] and pairs[("a", "c")]["agree"]
    assert pairs[("a", "b")]["small_difference"] == pytest.approx(-1.0033333, abs=1e-6)
    assert pairs[("a", "b")]["large_significant"]  # b is 1.0 better in every seed of the large model
    assert figures["agreement_small_significant"] == 0.0
    assert figures["pairwise_agreement"] == pytest.approx(1 / 3)
    assert figures["pairwise_agreement"] == sum(p["agree"] for p in pairs.values()) / len(pairs)
    assert figures["spearman"] == pytest.approx(-0.5)


def test_default_sizes_and_mixtures_are_what_the_bench_promises() -> None:
    small, large = SMALL.parameters(512), LARGE.parameters(512)
    assert small["total"] == 104_736  # the proxy of `curate bench mixing`
    assert large["total"] >= 10 * small["total"] and large["non_embedding"] >= 10 * small["non_embedding"]
    default = mixture_catalog()[: FidelitySettings().mixtures]
    assert len({m.weighting for m in default}) > 1 and len({m.keep for m in default}) > 1
    assert len({m.name for m in mixture_catalog()}) == len(mixture_catalog())
    assert parse_size("128x6x4", 3e-3) == ModelSize(128, 6, 4, 3e-3)
    for bad in ("128x6", "130x2x4", "12x2x4"):  # too few parts, heads do not divide, odd head size
        with pytest.raises(ConfigError, match="model size"):
            parse_size(bad, 1e-3)
    with pytest.raises(ConfigError, match="--seeds"):
        FidelitySettings(seeds=(0, 0)).check()
    with pytest.raises(ConfigError, match="--large-lr"):
        FidelitySettings(large=ModelSize(128, 6, 4, 0.0)).check()


def test_runs_scored_on_different_suites_are_refused() -> None:
    same = {"small": {"a": [{"eval_suite": "h1"}]}, "large": {"a": [{"eval_suite": "h1"}]}}
    assert one_suite(same) == ["h1"]
    for other in ("h2", None):
        with pytest.raises(ConfigError, match="different evaluation suites"):
            one_suite({**same, "large": {"a": [{"eval_suite": other}]}})


@pytest.mark.slow
def test_tiny_bench_scores_every_run_on_one_suite_with_paired_seeds(
    small_quality_model: FilterModels,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = FidelitySettings(
        mixtures=3, small_tokens=1024, scale=2, seeds=(0, 1), small=ModelSize(16, 1, 2, 1e-2),
        large=ModelSize(32, 2, 2, 3e-3), batch_size=4, seq_len=32, vocab_size=512, docs_per_domain=24,
        max_chars=1500, eval_tokens=400, models=small_quality_model,
    )  # fmt: skip
    figures = bench_proxy_fidelity(tmp_path, settings)
    names = [m.name for m in mixture_catalog()[:3]]
    suite = figures["eval_suites"]
    assert len(suite) == 1 and len(suite[0]) == 64
    for size, tokens in (("small", 1024), ("large", 2048)):
        assert sorted(figures["ranking"][size]) == sorted(names)
        assert list(figures["runs"][size]) == names
        for records in figures["runs"][size].values():
            assert [r["seed"] for r in records] == [0, 1]  # the same seeds, in the same order, everywhere
            assert {r["eval_suite"] for r in records} == set(suite)
            assert {r["tokens_trained"] for r in records} == {tokens}
            assert all(math.isfinite(r["score"]) for r in records)
            assert set(records[0]["bpb"]) == {"web", "books", "wiki", "news", "code"}
    assert figures["pairs"] == len(figures["pair_table"]) == 3
    assert -1.0 <= figures["spearman"] <= 1.0 or math.isnan(figures["spearman"])
    filtered = figures["mixtures"][names[1]]
    assert filtered["keep"] == 0.3 and set(filtered["thresholds"]) == set(
        figures["runs"]["small"][names[0]][0]["bpb"]
    )
    assert (tmp_path / "proxy-fidelity.json").is_file()
    assert "pairwise agreement" in format_table(figures)
    again = bench_proxy_fidelity(tmp_path, settings)  # finished runs are reused, figures and costs kept
    assert again["means"] == figures["means"]
    assert again["train_cpu_seconds"] == figures["train_cpu_seconds"]
    assert figures["train_cpu_seconds"]["large"]["runs_timed"] == 6
    reused = [
        r["reused"] for by_mix in again["runs"].values() for records in by_mix.values() for r in records
    ]
    assert all(reused) and len(reused) == 12

"""RegMix: the regression recovers known response surfaces; end to end on tiny proxies of real text."""

from __future__ import annotations

import numpy as np
import pytest

from bench.mixing_textdata import cached_text_shards
from mixers.strategies.base import Budget, MixProblem, Objective
from mixers.strategies.environment import ProxyConfig, ProxyEnvironment
from mixers.strategies.regmix import (
    RegMix,
    dirichlet_mixtures,
    fit_regressions,
    lightgbm_available,
    search_top_k,
    synthetic_surface,
)
from mixers.strategies.weights import is_distribution

TINY = ProxyConfig(d_model=32, n_layers=2, n_heads=2, seq_len=32, batch_size=8, eval_tokens=1024)
CENTER = np.array([0.5, 0.3, 0.2])


@pytest.fixture(scope="module")
def env() -> ProxyEnvironment:
    shards = cached_text_shards(max_docs={"wiki": 30, "news": 60, "code": 20}, max_chars=3000)
    return ProxyEnvironment.open(shards, TINY)


def test_dirichlet_mixtures_are_distributions_around_the_center():
    mixtures = dirichlet_mixtures(CENTER, 4000, np.random.default_rng(0))
    assert mixtures.shape == (4000, 3)
    assert np.allclose(mixtures.sum(axis=1), 1.0) and (mixtures >= 0).all()
    assert mixtures.mean(axis=0) == pytest.approx(CENTER, abs=0.03)


def test_linear_regression_recovers_known_coefficients():
    rng = np.random.default_rng(1)
    mixtures = dirichlet_mixtures(CENTER, 40, rng)
    truth = np.array([3.0, 1.0, 2.0])
    objective = mixtures @ truth + rng.normal(0, 0.01, len(mixtures))
    model, report = fit_regressions(mixtures, objective, "linear")
    assert model.coef == pytest.approx(truth, abs=0.1)
    assert report["models"]["linear"]["spearman"] > 0.95
    answer, predicted, _ = search_top_k(model, CENTER, np.random.default_rng(2), samples=20_000)
    assert int(np.argmax(answer)) == 1  # all the weight goes to the domain with the lowest coefficient
    assert predicted == pytest.approx(1.0, abs=0.1)


def test_trust_region_keeps_the_search_near_the_proxy_runs():
    rng = np.random.default_rng(5)
    runs = dirichlet_mixtures(CENTER, 24, rng, scales=(20.0, 20.0))  # every run close to the center
    objective = runs @ np.array([3.0, 1.0, 2.0])
    model, _ = fit_regressions(runs, objective, "linear")
    free, _, _ = search_top_k(model, CENTER, np.random.default_rng(6), samples=20_000)
    kept, _, info = search_top_k(model, CENTER, np.random.default_rng(6), samples=20_000, support=runs)
    assert free[1] > 0.9  # unconstrained: the vertex no run came near
    assert info["radius"] > 0 and 100 <= info["within"] < 20_000
    assert 0.5 * np.abs(kept - CENTER).sum() < 0.5 * np.abs(free - CENTER).sum()
    assert kept[1] > CENTER[1]  # still moved toward the better domain, as far as the data reaches


def test_quadratic_and_lightgbm_find_an_interior_optimum():
    rng = np.random.default_rng(3)
    optimum = np.array([0.2, 0.5, 0.3])
    mixtures = dirichlet_mixtures(CENTER, 48, rng)
    objective = np.array([synthetic_surface(m, optimum) for m in mixtures]) + rng.normal(0, 1e-3, 48)
    model, report = fit_regressions(mixtures, objective, "auto")
    assert report["chosen"] == "quadratic"  # the bowl is exactly a Scheffé quadratic
    assert report["models"]["quadratic"]["spearman"] > 0.95
    assert report["models"]["linear"]["spearman"] < report["models"]["quadratic"]["spearman"]
    answer, _, _ = search_top_k(model, CENTER, np.random.default_rng(4), samples=20_000)
    assert answer == pytest.approx(optimum, abs=0.05)
    if lightgbm_available():
        assert report["models"]["lightgbm"]["spearman"] > 0.8
        trees, _ = fit_regressions(mixtures, objective, "lightgbm")
        answer, _, _ = search_top_k(trees, CENTER, np.random.default_rng(4), samples=20_000)
        assert answer == pytest.approx(optimum, abs=0.1)


def test_regmix_end_to_end_on_tiny_proxies(env: ProxyEnvironment):
    problem = MixProblem(Objective.average(env.domains), Budget(runs=6, steps=12), seed=0, stages=2)
    result = RegMix(samples=5000, top_k=50).propose(env, problem)
    assert is_distribution(result.weights) and set(result.weights) == {"code", "news", "wiki"}
    assert result.schedule == [result.weights, result.weights]
    assert (result.runs_used, result.steps_used) == (6, 72)
    regression = result.report["regression"]
    assert regression["runs"] == 6 and regression["chosen"] in regression["models"]
    rhos = [m["spearman"] for m in regression["models"].values() if m["spearman"] is not None]
    assert all(-1.0 <= rho <= 1.0 for rho in rhos)
    assert result.report["search"]["radius"] > 0  # the trust region is on by default
    runs = result.report["runs"]
    assert len(runs) == 6 and len({tuple(r["weights"].values()) for r in runs}) == 6
    assert all(np.isfinite(r["objective"]) and 1.0 < r["objective"] < 12.0 for r in runs)

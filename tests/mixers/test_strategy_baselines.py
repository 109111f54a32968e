"""Baseline weights and the shared value types: pure arithmetic, no proxy runs."""

from __future__ import annotations

import math

import pytest

from curate.errors import ConfigError
from mixers.strategies import make_strategy
from mixers.strategies.base import Budget, Objective
from mixers.strategies.baselines import natural_weights, temperature_weights, uniform_weights
from mixers.strategies.environment import stage_steps, systematic_rows
from mixers.strategies.weights import average_schedule, is_distribution, normalise

TOKENS = {"code": 600.0, "news": 300.0, "wiki": 100.0}


def test_uniform_and_natural():
    assert uniform_weights(["a", "b", "c", "d"]) == dict.fromkeys("abcd", 0.25)
    assert natural_weights(TOKENS) == pytest.approx({"code": 0.6, "news": 0.3, "wiki": 0.1})


def test_temperature_interpolates_between_natural_and_uniform():
    assert temperature_weights(TOKENS, 1.0) == pytest.approx(natural_weights(TOKENS))
    hot = temperature_weights(TOKENS, 2.0)
    expected = {k: math.sqrt(v) for k, v in TOKENS.items()}
    total = sum(expected.values())
    assert hot == pytest.approx({k: v / total for k, v in expected.items()})
    assert temperature_weights(TOKENS, 1e6) == pytest.approx(uniform_weights(list(TOKENS)), abs=1e-5)
    cold = temperature_weights(TOKENS, 0.5)  # sharpens toward the largest domain
    assert cold["code"] > natural_weights(TOKENS)["code"] and is_distribution(cold)
    tiny = temperature_weights({"big": 1.0, "small": 1e-300}, 0.01)  # no 0/0 in log space
    assert is_distribution(tiny) and tiny["big"] == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        temperature_weights(TOKENS, 0.0)


def test_weights_are_validated():
    assert normalise({"a": 2, "b": 6}, ["a", "b", "c"]) == {"a": 0.25, "b": 0.75, "c": 0.0}
    for bad in ({"a": -1, "b": 2}, {"a": 0, "b": 0}, {"zzz": 1}):
        with pytest.raises(ConfigError):
            normalise(bad, ["a", "b"])


def test_objectives():
    balanced = Objective.balanced(["web", "wiki"], ["math"], balance=0.5)
    assert dict(balanced.weights) == pytest.approx({"math": 0.5, "web": 0.25, "wiki": 0.25})
    assert balanced.value({"math": 2.0, "web": 1.0, "wiki": 3.0, "other": 9.0}) == pytest.approx(2.0)
    assert Objective.average(["a", "b"]).value({"a": 1.0, "b": 2.0}) == pytest.approx(1.5)
    with pytest.raises(ConfigError, match="unknown evaluation set"):
        balanced.check(["web", "wiki"])
    assert Objective.from_json(balanced.to_json()) == balanced


def test_budget_schedule_and_batch_rows():
    assert Budget.from_tokens(10_000, runs=4, tokens_per_step=256) == Budget(4, 9)
    with pytest.raises(ConfigError):
        Budget(2, 0)
    assert stage_steps(10, 3) == [4, 3, 3]
    with pytest.raises(ConfigError):
        stage_steps(2, 3)
    schedule = [{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}]
    assert average_schedule(schedule, [3, 1]) == pytest.approx({"a": 0.75, "b": 0.25})
    import numpy as np

    rng = np.random.default_rng(0)
    counts = np.zeros(3)
    for _ in range(2000):
        rows = systematic_rows(np.array([0.05, 0.25, 0.7]), 8, rng)
        per_domain = np.bincount(rows, minlength=3)
        assert per_domain[2] in (5, 6) and per_domain[1] == 2  # floor or ceil of weight * batch
        counts += per_domain
    assert counts / counts.sum() == pytest.approx([0.05, 0.25, 0.7], abs=0.01)


def test_unknown_strategy_is_one_line():
    with pytest.raises(ConfigError, match="unknown strategy"):
        make_strategy("magic")
    with pytest.raises(ConfigError, match="temperature"):
        make_strategy("temperature", temprature=2)

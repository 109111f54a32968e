"""DoReMi: the Group-DRO update rule, and whole runs on tiny proxies of real text."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.mixing_textdata import cached_text_shards
from mixers.strategies.base import Budget, MixProblem, Objective
from mixers.strategies.doremi import DoReMi, domain_excess, doremi_update, row_weights_for
from mixers.strategies.environment import ProxyConfig, ProxyEnvironment
from mixers.strategies.weights import is_distribution

TINY = ProxyConfig(d_model=32, n_layers=2, n_heads=2, seq_len=32, batch_size=8, eval_tokens=1024)


@pytest.fixture(scope="module")
def env() -> ProxyEnvironment:
    shards = cached_text_shards(max_docs={"wiki": 30, "news": 60, "code": 20}, max_chars=3000)
    return ProxyEnvironment.open(shards, TINY)


def test_update_moves_toward_the_largest_excess_and_stays_smoothed():
    alpha = np.full(3, 1 / 3)
    stepped = doremi_update(alpha, np.array([0.1, 0.5, 0.0]), eta=1.0, smoothing=0.0)
    expected = np.exp([0.1, 0.5, 0.0]) / np.exp([0.1, 0.5, 0.0]).sum()
    assert stepped == pytest.approx(expected)
    extreme = doremi_update(alpha, np.array([0.0, 1e4, 0.0]), eta=1.0, smoothing=0.1)
    assert extreme == pytest.approx([0.1 / 3, 0.9 + 0.1 / 3, 0.1 / 3])  # no overflow, floor of c / k
    same = doremi_update(np.array([0.2, 0.3, 0.5]), np.full(3, 0.7), eta=2.0, smoothing=0.0)
    assert same == pytest.approx([0.2, 0.3, 0.5])  # equal excess changes nothing


def test_excess_is_clipped_per_token_and_averaged_per_domain():
    proxy = torch.tensor([[2.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    reference = torch.tensor([[1.0, 3.0], [0.0, 0.0], [5.0, 5.0]])
    excess = domain_excess(proxy, reference, np.array([0, 0, 2]), n_domains=4)
    assert excess == pytest.approx([(0.5 + 1.0) / 2, 0.0, 0.0, 0.0])  # the -3 token counts as 0, not -3
    weights = row_weights_for(np.array([0.5, 0.2, 0.3]), np.array([0, 0, 2, 2, 2]))
    assert weights.tolist() == pytest.approx([0.25, 0.25, 0.1, 0.1, 0.1])


def test_doremi_upweights_the_domain_the_reference_learned_best(env: ProxyEnvironment):
    problem = MixProblem(Objective.average(env.domains), Budget(runs=2, steps=12), seed=0)
    reference = {"code": 0.9, "news": 0.05, "wiki": 0.05}  # the reference is good at code, so code's
    result = DoReMi(reference=reference).propose(env, problem)  # excess loss is the largest
    assert is_distribution(result.weights)
    excess = np.array(result.report["excess"]).mean(axis=0)
    assert env.domains[int(np.argmax(excess))] == "code"
    assert max(result.weights, key=result.weights.get) == "code" and result.weights["code"] > 0.4
    alpha = np.array(result.report["alpha"])
    assert alpha.shape == (12, 3) and np.allclose(alpha.sum(axis=1), 1.0)
    assert result.weights["code"] == pytest.approx(alpha[:, 0].mean())  # the answer is the run's mean alpha
    assert (result.runs_used, result.steps_used) == (2, 24)

    again = DoReMi(reference=reference).propose(env, problem)
    assert again.weights == result.weights  # bit for bit, for a seed
    other = DoReMi(reference=reference).propose(env, MixProblem(problem.objective, problem.budget, seed=1))
    assert other.weights != result.weights

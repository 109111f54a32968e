"""Skill-It: the skills graph and the online rule, and whole runs on tiny proxies of real text."""

from __future__ import annotations

import numpy as np
import pytest

from bench.mixing_textdata import cached_text_shards
from curate.errors import ConfigError
from mixers.strategies import make_strategy
from mixers.strategies.base import Budget, MixProblem, Objective
from mixers.strategies.environment import ProxyConfig, ProxyEnvironment, RunRequest
from mixers.strategies.skillit import curriculum_weights, skills_graph
from mixers.strategies.weights import is_distribution

TINY = ProxyConfig(d_model=32, n_layers=2, n_heads=2, seq_len=32, batch_size=8, eval_tokens=1024)


@pytest.fixture(scope="module")
def env() -> ProxyEnvironment:
    shards = cached_text_shards(max_docs={"wiki": 30, "news": 60, "code": 20}, max_chars=3000)
    return ProxyEnvironment.open(shards, TINY)


def test_graph_is_the_relative_drop_clipped_at_zero():
    before = {"a": 4.0, "b": 2.0}
    after = [{"a": 3.0, "b": 2.5}, {"a": 4.0, "b": 1.0}]
    graph = skills_graph(before, after, ["a", "b"])
    assert graph.tolist() == [[0.25, 0.0], [0.0, 0.5]]  # training on the first domain hurt b: no credit


def test_online_rule_follows_the_graph_toward_what_is_still_hard():
    graph = np.array([[0.5, 0.0], [0.0, 0.5]])
    hard_b = curriculum_weights(graph, np.array([0.5, 0.5]), [np.array([1.0, 3.0])], eta=1.0)
    assert hard_b[1] > hard_b[0] and hard_b.sum() == pytest.approx(1.0)
    expected = np.exp([0.25, 0.75]) / np.exp([0.25, 0.75]).sum()
    assert hard_b == pytest.approx(expected)
    only_a = curriculum_weights(graph, np.array([1.0, 0.0]), [np.array([1.0, 3.0])], eta=1.0)
    assert only_a[0] > only_a[1]  # the objective ignores b, so b's loss pulls nothing
    huge = curriculum_weights(graph, np.array([0.5, 0.5]), [np.array([1e6, 0.0])] * 3, eta=5.0)
    assert np.isfinite(huge).all() and huge[0] == pytest.approx(1.0)


def test_skillit_measures_a_graph_and_steers_a_staged_run(env: ProxyEnvironment):
    objective = Objective({"code": 1.0})
    problem = MixProblem(objective, Budget(runs=6, steps=6), seed=0, stages=3)
    result = make_strategy("skillit").propose(env, problem)
    graph = result.report["graph"]
    assert graph["rows"] == env.domains and graph["columns"] == ["code"]
    values = np.array(graph["values"])
    assert values.shape == (3, 1) and (values >= 0).all()
    assert env.domains[int(values[:, 0].argmax())] == "code"  # code teaches code most
    assert len(result.schedule) == 3 and all(is_distribution(w) for w in result.schedule)
    assert result.report["short_run_steps"] == 18 // 4  # half the budget over warm-up + 3 domain runs
    assert result.report["online"]["steps"] == 36 - 4 * 4  # the online run takes what they left
    assert (result.runs_used, result.steps_used) == (5, 36)
    code_share = [weights["code"] for weights in result.schedule]
    assert code_share[0] > 1 / 3  # the graph sends the first stage toward the target

    closed = env.run(RunRequest(steps=12, seed=5, controller=result.controller, stages=3))
    assert len(closed.schedule) == 3 and closed.schedule[0] == pytest.approx(result.schedule[0], abs=0.2)
    again = make_strategy("skillit").propose(env, problem)
    assert again.schedule == result.schedule  # bit for bit, for a seed


def test_a_budget_too_small_for_the_graph_is_one_line(env: ProxyEnvironment):
    problem = MixProblem(Objective.average(env.domains), Budget(runs=1, steps=6), seed=0)
    with pytest.raises(ConfigError, match="6 proxy steps give them none"):
        make_strategy("skillit").propose(env, problem)

"""The mixing agent end to end on tiny proxies of real text: collect -> train -> save -> load -> run,
then run on a domain space it was never trained on."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from bench.mixing_textdata import cached_text_shards
from curate.errors import ConfigError
from mixers.strategies.agent import (
    FEATURES,
    Agent,
    AgentPolicy,
    TrainSettings,
    build_transitions,
    default_objectives,
    train_policy,
)
from mixers.strategies.agent_trajectories import collect, load_trajectories, save_trajectories
from mixers.strategies.base import Budget, MixProblem, Objective
from mixers.strategies.environment import ProxyConfig, ProxyEnvironment
from mixers.strategies.weights import is_distribution

TINY = ProxyConfig(d_model=32, n_layers=2, n_heads=2, seq_len=32, batch_size=8, eval_tokens=1024)
FAST = TrainSettings(hidden=32, epochs=40, holdout=0.2)


@pytest.fixture(scope="module")
def shards() -> Path:
    return cached_text_shards(max_docs={"wiki": 30, "news": 60, "code": 20}, max_chars=3000)


@pytest.fixture(scope="module")
def trajectories(shards: Path) -> list[dict]:
    env = ProxyEnvironment.open(shards, TINY)
    return collect(env, trajectories=5, stages=2, steps=8, seed=0)


def test_collected_trajectories_record_every_stage(trajectories: list[dict], tmp_path: Path):
    assert len(trajectories) == 5
    for trajectory in trajectories:
        assert trajectory["domains"] == ["code", "news", "wiki"]
        assert len(trajectory["schedule"]) == 2 and trajectory["stage_steps"] == [4, 4]
        assert len(trajectory["history"]) == 3  # before training and after each stage
        assert all(is_distribution(w) for w in trajectory["schedule"])
        start, end = trajectory["history"][0], trajectory["history"][-1]
        assert all(end[d] < start[d] for d in trajectory["domains"])  # eight updates do teach something
    assert len({json.dumps(t["schedule"]) for t in trajectories}) == 5  # random schedules differ
    path = save_trajectories(trajectories, tmp_path / "data" / "trajectories.jsonl")
    assert load_trajectories([path.parent]) == trajectories


def test_transitions_relabel_every_objective(trajectories: list[dict]):
    objectives = default_objectives(trajectories)
    assert len(objectives) == 4  # the average, and each of the three domains as the target
    data = build_transitions(trajectories, objectives)
    assert len(data) == 5 * 4 * 2
    assert data.state.shape == (40, 3, len(FEATURES)) and data.mask.all()
    # the rewards of one trajectory under one objective telescope to its relative improvement
    first = trajectories[0]
    objective = objectives[0]
    gain = (objective.value(first["history"][0]) - objective.value(first["history"][-1])) / objective.value(
        first["history"][0]
    )
    assert data.reward[:2].sum() == pytest.approx(gain, rel=1e-5)
    assert data.done[:2].tolist() == [0.0, 1.0]


def test_train_save_load_run_on_other_domain_spaces(trajectories: list[dict], shards: Path, tmp_path: Path):
    policy = train_policy(trajectories, settings=FAST)
    card = policy.card
    assert card["data"]["trajectories"] == 5 and card["data"]["domain_counts"] == [3]
    assert card["metrics"]["held_out"]["trajectories"] == 1
    assert np.isfinite(card["metrics"]["train"]["bellman_mse"]) and card["metrics"]["train"]["kappa"] > 0

    folder = policy.save(tmp_path / "agent")
    loaded = AgentPolicy.load(folder)
    assert json.loads((folder / "card.json").read_text()) == loaded.card
    features = np.random.default_rng(0).normal(size=(5, len(FEATURES))).astype(np.float32)
    assert loaded.act(features) == pytest.approx(policy.act(features))  # same network after the round trip
    for domains in (2, 5, 7):  # any number of domains: one shared network, softmax over domains
        weights = loaded.act(features[:domains] if domains <= 5 else np.vstack([features, features[:2]]))
        assert weights.shape == (domains,) and weights.sum() == pytest.approx(1.0) and (weights > 0).all()

    two = ProxyEnvironment.open(shards, TINY, domains=["code", "wiki"])  # trained on three domains
    problem = MixProblem(Objective.balanced(["wiki"], ["code"]), Budget(runs=2, steps=8), seed=0, stages=2)
    result = Agent(folder).propose(two, problem)
    assert [list(w) for w in result.schedule] == [["code", "wiki"]] * 2
    assert all(is_distribution(w) for w in result.schedule) and is_distribution(result.weights)
    rollouts = result.report["rollouts"]
    assert len(rollouts) == 2 and rollouts[0]["schedule"] != rollouts[1]["schedule"]  # greedy, then explored
    assert result.report["chosen_rollout"] == int(np.argmin([r["objective"] for r in rollouts]))
    controller = pickle.loads(pickle.dumps(result.controller))  # goes to Ray tasks as it is
    assert controller.objective == problem.objective


def test_loading_a_missing_agent_is_one_clear_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="agent train"):
        AgentPolicy.load(tmp_path)

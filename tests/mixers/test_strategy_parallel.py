"""Proxy runs as parallel Ray tasks give the very same answer as sequential runs for a seed."""

from __future__ import annotations

import pytest

from bench.mixing_textdata import cached_text_shards
from mixers.strategies.base import Budget, MixProblem, Objective
from mixers.strategies.environment import ProxyConfig, ProxyEnvironment
from mixers.strategies.parallel import Runner, ray_available
from mixers.strategies.regmix import RegMix

TINY = ProxyConfig(d_model=32, n_layers=2, n_heads=2, seq_len=32, batch_size=8, eval_tokens=1024)


@pytest.mark.skipif(not ray_available(), reason="ray is not installed")
def test_ray_and_sequential_agree_for_a_seed():
    shards = cached_text_shards(max_docs={"wiki": 30, "news": 60, "code": 20}, max_chars=3000)
    env = ProxyEnvironment.open(shards, TINY)
    problem = MixProblem(Objective.average(env.domains), Budget(runs=3, steps=4), seed=3)
    strategy = RegMix(samples=2000, top_k=20)
    sequential = strategy.propose(env, problem, Runner.create("sequential"))
    parallel = strategy.propose(env, problem, Runner.create("ray", workers=2))
    bpb = [[run["bpb"] for run in result.report["runs"]] for result in (sequential, parallel)]
    assert bpb[0] == bpb[1]  # bit for bit: same seeds, same thread count, in this process or a worker
    assert parallel.weights == sequential.weights

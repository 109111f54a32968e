"""Mixing strategies: choose domain weights (or a per-stage schedule) from tiny proxy runs.

    from mixers.strategies import make_strategy, Objective, Budget, MixProblem
    from mixers.strategies.environment import ProxyEnvironment

    env = ProxyEnvironment.open("MIX/tokens")                      # token shards, one domain per group
    problem = MixProblem(Objective.average(env.domains), Budget(runs=16, steps=40), seed=0)
    result = make_strategy("regmix").propose(env, problem)         # weights, schedule, JSON report

Strategies: ``uniform``, ``natural``, ``temperature`` (baselines.py), ``regmix`` (regmix.py), ``doremi``
(doremi.py), ``skillit`` (skillit.py), ``agent`` (agent.py: collect -> train -> run); `curate bench
mixing` scores them at equal compute.
"""

from __future__ import annotations

from typing import Any

from curate.errors import ConfigError
from mixers.strategies.base import Budget, MixProblem, MixResult, Objective, Strategy

STRATEGIES = ("uniform", "natural", "temperature", "fixed", "regmix", "doremi", "skillit", "agent")

__all__ = ["STRATEGIES", "Budget", "MixProblem", "MixResult", "Objective", "Strategy", "make_strategy"]


def make_strategy(name: str, **params: Any) -> Strategy:
    """A strategy by name with its settings; unknown names and settings fail with one line."""
    from mixers.strategies.agent import Agent
    from mixers.strategies.baselines import Fixed, Natural, Temperature, Uniform
    from mixers.strategies.doremi import DoReMi
    from mixers.strategies.regmix import RegMix
    from mixers.strategies.skillit import SkillIt

    classes: dict[str, type[Strategy]] = {
        "uniform": Uniform,
        "natural": Natural,
        "temperature": Temperature,
        "fixed": Fixed,
        "regmix": RegMix,
        "doremi": DoReMi,
        "skillit": SkillIt,
        "agent": Agent,
    }
    if name not in classes:
        raise ConfigError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    try:
        return classes[name](**params)
    except TypeError as error:
        raise ConfigError(f"strategy {name}: bad settings {sorted(params)} ({error})") from None

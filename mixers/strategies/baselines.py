"""The baselines every learned strategy must beat: uniform, natural and temperature-scaled weights.

They spend no proxy compute, which is exactly why they matter in an equal-compute comparison: a
strategy that trains dozens of proxies and cannot beat token-proportional sampling has told us that
its proxies are noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from curate.errors import ConfigError
from mixers.strategies.base import MixProblem, MixResult, Strategy, static_result
from mixers.strategies.weights import Weights, normalise

if TYPE_CHECKING:
    from mixers.strategies.environment import ProxyEnvironment
    from mixers.strategies.parallel import Runner


def uniform_weights(domains: Sequence[str]) -> Weights:
    """Every domain the same share, whatever its size."""
    if not domains:
        raise ConfigError("no domains to weigh")
    return normalise(dict.fromkeys(domains, 1.0), domains)


def natural_weights(tokens: Mapping[str, float]) -> Weights:
    """Token-proportional: what sampling the concatenated corpus uniformly would give."""
    return normalise(tokens, list(tokens))


def temperature_weights(tokens: Mapping[str, float], temperature: float) -> Weights:
    """natural^(1/T), renormalised: T = 1 is natural, T -> infinity tends to uniform, T < 1 sharpens.

    Computed in log space so a tiny domain under a small temperature does not underflow to a 0/0.
    """
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    natural = natural_weights(tokens)
    names = list(natural)
    shares = np.array([natural[n] for n in names])
    with np.errstate(divide="ignore"):
        logits = np.where(shares > 0, np.log(shares) / temperature, -np.inf)
    scaled = np.exp(logits - logits.max())
    return normalise(dict(zip(names, scaled.tolist(), strict=True)), names)


class Uniform(Strategy):
    name = "uniform"

    def propose(self, env: ProxyEnvironment, problem: MixProblem, runner: Runner | None = None) -> MixResult:
        return static_result(self.name, uniform_weights(env.domains), problem, {})


class Natural(Strategy):
    name = "natural"

    def propose(self, env: ProxyEnvironment, problem: MixProblem, runner: Runner | None = None) -> MixResult:
        return static_result(self.name, dict(env.natural), problem, {})


class Temperature(Strategy):
    name = "temperature"

    def __init__(self, temperature: float = 2.0) -> None:
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def propose(self, env: ProxyEnvironment, problem: MixProblem, runner: Runner | None = None) -> MixResult:
        weights = temperature_weights(env.natural, self.temperature)
        return static_result(self.name, weights, problem, {"temperature": self.temperature})


class Fixed(Strategy):
    """Given weights (e.g. the source mix of a continual run: "keep doing what you did")."""

    name = "fixed"

    def __init__(self, weights: Mapping[str, float], label: str = "fixed") -> None:
        self.weights, self.name = dict(weights), label

    def propose(self, env: ProxyEnvironment, problem: MixProblem, runner: Runner | None = None) -> MixResult:
        return static_result(
            self.name, normalise(self.weights, env.domains), problem, {"weights": self.weights}
        )

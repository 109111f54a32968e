"""Domain weights and schedules of weights: the values every strategy and the proxy environment speak in.

They sit below both, so the environment (which runs a schedule) and the strategies (which propose one)
share them without importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from curate.errors import ConfigError

Weights = dict[str, float]
Schedule = list[Weights]


def normalise(weights: Mapping[str, float], domains: Sequence[str] | None = None) -> Weights:
    """A distribution over ``domains`` (default: the keys), in that order; refuses negatives and all-zero.

    Domains missing from ``weights`` get 0 and unknown names are an error, so a typo cannot silently
    drop a domain from a mixture.
    """
    names = list(domains) if domains is not None else list(weights)
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ConfigError(f"weights name unknown domain(s) {unknown}; known: {sorted(names)}")
    values = np.array([float(weights.get(name, 0.0)) for name in names])
    if not np.all(np.isfinite(values)) or (values < 0).any() or values.sum() <= 0:
        raise ConfigError(f"weights must be finite, >= 0 and not all zero, got {dict(weights)}")
    return dict(zip(names, (values / values.sum()).tolist(), strict=True))


def as_vector(weights: Mapping[str, float], domains: Sequence[str]) -> np.ndarray:
    """Weights in domain order as a normalised float64 vector."""
    return np.array(list(normalise(weights, domains).values()))


def as_weights(vector: Iterable[float], domains: Sequence[str]) -> Weights:
    """A weight vector in domain order back to a normalised name -> weight mapping."""
    return normalise(dict(zip(domains, (float(v) for v in vector), strict=True)), domains)


def is_distribution(weights: Mapping[str, float], tolerance: float = 1e-6) -> bool:
    values = list(weights.values())
    return (
        bool(values) and all(v >= 0 and math.isfinite(v) for v in values) and abs(sum(values) - 1) < tolerance
    )


def average_schedule(schedule: Schedule, stage_steps: Sequence[int] | None = None) -> Weights:
    """The overall share of each domain over a staged run (stages weighted by their steps)."""
    if not schedule:
        raise ValueError("an empty schedule has no weights")
    steps = list(stage_steps) if stage_steps is not None else [1] * len(schedule)
    domains = list(schedule[0])
    total = np.zeros(len(domains))
    for weights, count in zip(schedule, steps, strict=True):
        total += count * as_vector(weights, domains)
    return as_weights(total, domains)


class Controller(Protocol):
    """Chooses the next stage's weights from what the run has seen so far (see ``Observation``)."""

    def __call__(self, observation: Any) -> Weights: ...

"""The one interface every mixing strategy implements, and the values it speaks in.

A strategy is asked one question: given the domains of an environment (the proxy runs it may spend),
an objective over named evaluation sets and a compute budget, which domain weights (or which schedule of
weights, one per training stage) should the real run use? It answers with a :class:`MixResult` whose
report is JSON, so a search is auditable after the fact: every proxy run it trained, what it believed,
what it chose.

Why objectives name evaluation sets rather than domains: the thing we care about (a maths benchmark, a
held-out code set, "keep the source distribution while learning the target") is not always a training
domain. Each training domain's held-out documents are an evaluation set named after it; extra sets can be
attached to the environment under their own names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from curate.errors import ConfigError
from mixers.strategies.weights import Controller, Schedule, Weights, normalise

if TYPE_CHECKING:
    from mixers.strategies.environment import ProxyEnvironment
    from mixers.strategies.parallel import Runner

@dataclass(frozen=True)
class Objective:
    """A weighted mean of bits per byte over named evaluation sets (lower is better).

    ``kind`` records how it was built (``weighted``, ``average``, ``balanced``) for reports; only the
    weights decide its value.
    """

    weights: Mapping[str, float]
    kind: str = "weighted"

    def __post_init__(self) -> None:
        if not self.weights:
            raise ConfigError("an objective needs at least one evaluation set")
        object.__setattr__(self, "weights", normalise(self.weights, sorted(self.weights)))

    @classmethod
    def average(cls, names: Iterable[str]) -> Objective:
        """Every named set weighs the same: no set can be sacrificed for a larger one."""
        return cls(dict.fromkeys(names, 1.0), "average")

    @classmethod
    def balanced(cls, source: Iterable[str], target: Iterable[str], balance: float = 0.5) -> Objective:
        """Continual pretraining: ``balance`` on the mean of the source sets (what must not be forgotten),
        ``1 - balance`` on the mean of the target sets (what the run is for)."""
        source, target = list(source), list(target)
        if not source or not target or not 0.0 <= balance <= 1.0:
            raise ConfigError("a balanced objective needs source and target sets and 0 <= balance <= 1")
        weights: dict[str, float] = {}
        for names, share in ((source, balance), (target, 1.0 - balance)):
            for name in names:
                weights[name] = weights.get(name, 0.0) + share / len(names)
        return cls({k: v for k, v in weights.items() if v > 0}, "balanced")

    def value(self, bpb: Mapping[str, float]) -> float:
        missing = sorted(set(self.weights) - set(bpb))
        if missing:
            raise ConfigError(f"objective needs evaluation set(s) {missing}; evaluated: {sorted(bpb)}")
        return float(sum(w * bpb[name] for name, w in self.weights.items()))

    def check(self, names: Iterable[str]) -> None:
        """Fail before any proxy run when the objective names a set the environment cannot evaluate."""
        unknown = sorted(set(self.weights) - set(names))
        if unknown:
            raise ConfigError(
                f"objective names unknown evaluation set(s) {unknown}; known: {sorted(names)} "
                "(training domains, plus extra sets attached to the environment)"
            )

    def on_domains(self, domains: Sequence[str]) -> np.ndarray:
        """The objective's weight on each training domain's own held-out set (0 when it has none)."""
        return np.array([self.weights.get(name, 0.0) for name in domains])

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "weights": dict(self.weights)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Objective:
        return cls(dict(data["weights"]), data.get("kind", "weighted"))


@dataclass(frozen=True)
class Budget:
    """Proxy compute a strategy may spend: ``runs`` proxy trainings of ``steps`` updates each.

    Tokens follow from the environment's batch shape (``runs * steps * batch_size * seq_len``); a
    strategy that needs fewer, longer runs (DoReMi) spends the same total as ``runs * steps`` updates.
    """

    runs: int
    steps: int

    def __post_init__(self) -> None:
        if self.runs < 0 or self.steps <= 0:
            raise ConfigError(
                f"budget needs runs >= 0 and steps > 0, got runs={self.runs} steps={self.steps}"
            )

    @property
    def total_steps(self) -> int:
        return self.runs * self.steps

    @classmethod
    def from_tokens(cls, tokens: int, runs: int, tokens_per_step: int) -> Budget:
        """A token budget split over ``runs`` proxies, rounded down to whole steps per run."""
        if runs <= 0:
            raise ConfigError("a token budget needs runs > 0")
        steps = tokens // (runs * tokens_per_step)
        if steps <= 0:
            raise ConfigError(
                f"{tokens:,} tokens over {runs} runs is less than one step of {tokens_per_step} tokens each"
            )
        return cls(runs, int(steps))


@dataclass(frozen=True)
class MixProblem:
    """What to optimise (objective), with what (budget), in how many stages, from where.

    ``init_state`` is the model a continual-pretraining run starts from (a state dict of the
    environment's proxy, typically from :meth:`ProxyEnvironment.pretrain`), trained on
    ``source_weights``; None means training from scratch.
    """

    objective: Objective
    budget: Budget
    seed: int = 0
    stages: int = 1
    init_state: Any = field(default=None, compare=False, repr=False)
    source_weights: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.stages <= 0:
            raise ConfigError(f"stages must be >= 1, got {self.stages}")

    def describe(self) -> dict[str, Any]:
        return {
            "objective": self.objective.to_json(),
            "budget": asdict(self.budget),
            "seed": self.seed,
            "stages": self.stages,
            "continual": self.init_state is not None,
            "source_weights": dict(self.source_weights) if self.source_weights else None,
        }


@dataclass
class MixResult:
    """A strategy's answer: overall weights, the per-stage schedule, what it spent and why it chose so.

    ``controller`` is set by strategies that act during a run (the agent): evaluating them closed-loop
    means letting the controller choose each stage of the evaluation run itself.
    """

    strategy: str
    weights: Weights
    schedule: Schedule
    report: dict[str, Any]
    runs_used: int = 0
    steps_used: int = 0
    controller: Controller | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "weights": self.weights,
            "schedule": self.schedule,
            "compute": {"proxy_runs": self.runs_used, "proxy_steps": self.steps_used},
            "report": self.report,
        }


class Strategy(ABC):
    """A way of choosing domain weights; subclasses set ``name`` and implement :meth:`propose`."""

    name: str = "strategy"

    @abstractmethod
    def propose(self, env: ProxyEnvironment, problem: MixProblem, runner: Runner | None = None) -> MixResult:
        """Spend at most ``problem.budget`` on proxy runs in ``env`` (through ``runner``) and answer."""

    def params(self) -> dict[str, Any]:
        """The strategy's own settings, recorded in its report."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def static_result(name: str, weights: Weights, problem: MixProblem, report: dict[str, Any]) -> MixResult:
    """The result of a strategy that spends no proxy compute: the same weights in every stage."""
    return MixResult(name, weights, [dict(weights)] * problem.stages, {"params": report})

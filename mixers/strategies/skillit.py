"""Skill-It (Chen et al., 2023): an ordered curriculum over domains, steered by a skills graph.

1. Base model: the starting model of a continual run, or else a short warm-up on the uniform mix. The
   first steps of any mix mostly learn which tokens are frequent, which every domain teaches alike; the
   graph measured after them sees what one domain teaches about another.
2. Skills graph: from the base, one short run per domain on that domain alone, then every evaluation
   set the objective names is scored. ``graph[i, j]`` is the relative drop of set j's bits per byte after
   training on domain i, clipped at zero (a domain that makes a set worse earns it no weight).
3. Online curriculum: the run is split into the problem's stages (with one stage this is a static mix
   chosen from the graph and the first evaluation); before each, domain i gets weight
   ``p_i ~ exp(eta * sum_t sum_j graph[i, j] * w_j * L_j(t))`` over every evaluation so far (``w`` the
   objective's weights, ``L`` bits per byte): a domain that teaches what is still hard for the objective
   gains share, and a set learned well stops pulling.

The answer is that rule as a controller (acting closed-loop when evaluated, as the agent's does) and the
schedule it chose on its own proxy run. Equal compute: warm-up, graph runs and the online run together
spend the budget (``runs * steps`` updates); the short runs share ``graph_share`` of it equally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from curate.errors import ConfigError
from mixers.strategies.base import MixProblem, MixResult, Strategy
from mixers.strategies.baselines import uniform_weights
from mixers.strategies.environment import Observation, RunRequest
from mixers.strategies.parallel import Runner, run_request
from mixers.strategies.weights import Weights, as_weights, average_schedule

if TYPE_CHECKING:
    from mixers.strategies.environment import ProxyEnvironment


def skills_graph(before: dict[str, float], after: list[dict[str, float]], sets: list[str]) -> np.ndarray:
    """Rows: the domain trained on; columns: evaluation sets; relative bits-per-byte drop, >= 0."""
    base = np.array([before[name] for name in sets])
    trained = np.array([[scores[name] for name in sets] for scores in after])
    return np.clip((base - trained) / base, 0.0, None)


def curriculum_weights(
    graph: np.ndarray, set_weights: np.ndarray, history: list[np.ndarray], eta: float
) -> np.ndarray:
    """The online rule: exponentiated sum of past losses carried through the graph (log-space, so a
    long run cannot overflow)."""
    pressure = np.sum(history, axis=0) * set_weights
    logits = eta * (graph @ pressure)
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


@dataclass(frozen=True)
class SkillItController:
    """The online rule as a run's controller; plain tuples so it pickles into Ray tasks."""

    domains: tuple[str, ...]
    sets: tuple[str, ...]
    graph: tuple[tuple[float, ...], ...]
    set_weights: tuple[float, ...]
    eta: float

    def __call__(self, observation: Observation) -> Weights:
        if tuple(observation.domains) != self.domains:
            raise ConfigError(f"skillit graph is over {self.domains}, the run trains {observation.domains}")
        history = [np.array([scores[name] for name in self.sets]) for scores in observation.history]
        vector = curriculum_weights(np.array(self.graph), np.array(self.set_weights), history, self.eta)
        return as_weights(vector, self.domains)


class SkillIt(Strategy):
    """A skills graph from short single-domain runs, then an online curriculum toward the objective."""

    name = "skillit"

    def __init__(self, eta: float = 2.0, graph_share: float = 0.5) -> None:
        if not eta > 0 or not 0 < graph_share < 1:
            raise ConfigError(f"skillit needs eta > 0 and 0 < graph_share < 1, got {eta}, {graph_share}")
        self.eta, self.graph_share = eta, graph_share

    def propose(self, env: ProxyEnvironment, problem: MixProblem, runner: Runner | None = None) -> MixResult:
        runner = runner or Runner()
        total, continual = problem.budget.total_steps, problem.init_state is not None
        probes = len(env.domains) + (0 if continual else 1)  # warm-up (from scratch) + one run per domain
        short = int(self.graph_share * total) // probes
        if short < 1:
            raise ConfigError(
                f"skillit spends graph_share {self.graph_share} of the budget on {probes} short runs: "
                f"{total} proxy steps give them none; raise runs or steps"
            )
        base_state, before = self._base(env, problem, short, runner)
        sets = sorted(problem.objective.weights)
        after = runner.map(run_request, env.spec, self._graph_requests(env, problem, short, base_state))
        graph = skills_graph(before, [result.bpb for result in after], sets)
        controller = SkillItController(
            tuple(env.domains),
            tuple(sets),
            tuple(tuple(row) for row in graph.tolist()),
            tuple(float(problem.objective.weights[name]) for name in sets),
            self.eta,
        )
        online = self._online_request(problem, total - short * probes, controller)
        [run] = runner.map(run_request, env.spec, [online])
        report = {
            "params": self.params(),
            "graph": {"rows": list(env.domains), "columns": sets, "values": graph.round(6).tolist()},
            "base_bpb": before,
            "short_run_steps": short,
            "online": run.to_json(),
        }
        weights = average_schedule(run.schedule)
        return MixResult(self.name, weights, run.schedule, report, probes + 1, total, controller)

    def _base(
        self, env: ProxyEnvironment, problem: MixProblem, steps: int, runner: Runner
    ) -> tuple[Any, dict[str, float]]:
        """The model the graph starts from and its scores: the continual start, or a uniform warm-up."""
        if problem.init_state is not None:
            start = env.new_run(problem.seed, 1, problem.init_state)
            return problem.init_state, env.evaluate(start.model, start.recipe)
        request = RunRequest(
            steps=steps,
            seed=problem.seed,
            schedule=(uniform_weights(env.domains),),
            return_state=True,
        )
        [warm] = runner.map(run_request, env.spec, [request])
        return warm.state, warm.bpb

    def _graph_requests(
        self, env: ProxyEnvironment, problem: MixProblem, steps: int, state: Any
    ) -> list[RunRequest]:
        return [
            RunRequest(
                steps=steps,
                seed=problem.seed,
                schedule=({domain: 1.0},),
                init_state=state,
                initial_weights=uniform_weights(env.domains),
            )
            for domain in env.domains
        ]

    @staticmethod
    def _online_request(problem: MixProblem, steps: int, controller: SkillItController) -> RunRequest:
        return RunRequest(
            steps=steps,
            seed=problem.seed,
            controller=controller,
            stages=problem.stages,
            init_state=problem.init_state,
            initial_weights=problem.source_weights,
        )

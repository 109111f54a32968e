"""Scoring strategies' answers with fresh proxies on shared seeds, and saying whether one beats another.

A strategy's own best search run flatters whoever overfits to its seed, so an answer (weights or a
schedule) is trained again with evaluation seeds no strategy searched with, several of them; every answer
gets the same seeds, so the comparisons are paired (`mixers.significance`). A strategy that acts during a
run (the agent) is also scored closed-loop, its controller choosing each stage, as a separate label.
`curate bench mixing` ranks strategies with it; `curate mixsearch` checks its answer against uniform and
natural with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mixers.significance import mean_and_se, paired_comparison
from mixers.strategies.base import MixProblem, MixResult
from mixers.strategies.environment import ProxyEnvironment, RunRequest
from mixers.strategies.parallel import Runner, run_request

BASELINES = ("uniform", "natural")


def evaluation_seeds(problem: MixProblem, count: int) -> list[int]:
    """Seeds apart from any a search used (searches count up from `problem.seed`)."""
    return [problem.seed + 10_000 + i for i in range(count)]


def evaluation_requests(
    result: MixResult, problem: MixProblem, steps: int, seeds: Sequence[int], closed_loop: bool
) -> list[tuple[str, RunRequest]]:
    start = {
        "init_state": problem.init_state,
        "initial_weights": dict(problem.source_weights) if problem.source_weights else None,
    }
    requests = [
        (result.strategy, RunRequest(steps=steps, seed=seed, schedule=tuple(result.schedule), **start))
        for seed in seeds
    ]
    if closed_loop and result.controller is not None:
        requests += [
            (
                f"{result.strategy}+online",
                RunRequest(
                    steps=steps, seed=seed, controller=result.controller, stages=problem.stages, **start
                ),
            )
            for seed in seeds
        ]
    return requests


def score_answers(
    env: ProxyEnvironment,
    problem: MixProblem,
    answers: Sequence[MixResult],
    runner: Runner,
    seeds: Sequence[int],
    steps: int,
    closed_loop: bool = True,
) -> dict[str, list[Any]]:
    """Each answer's evaluation runs (in the order of `seeds`), by label, all in one batch of runs."""
    labelled = [
        item for answer in answers for item in evaluation_requests(answer, problem, steps, seeds, closed_loop)
    ]
    outcomes = runner.map(run_request, env.spec, [request for _, request in labelled])
    grouped: dict[str, list[Any]] = {}
    for (label, _), outcome in zip(labelled, outcomes, strict=True):
        grouped.setdefault(label, []).append(outcome)
    return grouped


def versus_baselines(per_seed: Mapping[str, Sequence[float]]) -> dict[str, dict[str, Any]]:
    """Each label against uniform and natural (when scored): the ratio of mean objectives (< 1: better)
    and the paired test over the shared seeds, whose verdict says whether it is better at all."""
    baselines = [name for name in BASELINES if name in per_seed]
    return {
        label: {
            f"vs_{base}": {
                "ratio": mean_and_se(values)[0] / mean_and_se(per_seed[base])[0],
                **paired_comparison(values, per_seed[base], (label, base)),
            }
            for base in baselines
            if base != label
        }
        for label, values in per_seed.items()
    }

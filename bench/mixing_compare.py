"""Strategies against each other at equal proxy compute, scored by fresh proxies on their answers.

Every strategy gets the same problem (objective, budget, stages, start); its answer is scored by fresh
proxies on shared evaluation seeds (`mixers.strategies.evaluation`), and each row says whether it beats
uniform and natural beyond seed noise.

Continual pretraining: :func:`continual_problem` trains the starting model on the source mix once and
gives every strategy (and every evaluation run) that same start.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench.machine import machine
from mixers.significance import format_comparison, mean_and_se
from mixers.strategies.base import Budget, MixProblem, MixResult, Objective, Strategy
from mixers.strategies.environment import ProxyEnvironment
from mixers.strategies.evaluation import BASELINES, evaluation_seeds, score_answers, versus_baselines
from mixers.strategies.parallel import Runner
from mixers.strategies.weights import Weights, normalise


def continual_problem(
    env: ProxyEnvironment,
    source: Weights,
    target_sets: Sequence[str],
    budget: Budget,
    pretrain_steps: int,
    balance: float = 0.5,
    stages: int = 1,
    seed: int = 0,
    source_sets: Sequence[str] | None = None,
) -> tuple[MixProblem, dict[str, Any]]:
    """A continual-pretraining problem: start from a proxy trained on ``source``, objective balanced
    between the source sets (default: the domains with source weight) and the target sets."""
    source = normalise(source, env.domains)
    sources = list(source_sets) if source_sets else [d for d, w in source.items() if w > 0]
    objective = Objective.balanced(sources, target_sets, balance)
    objective.check(env.eval_names)
    state, base = env.pretrain(source, pretrain_steps, seed=seed + 7919)
    problem = MixProblem(objective, budget, seed, stages, init_state=state, source_weights=source)
    return problem, {"source": source, "pretrain_steps": pretrain_steps, "start_bpb": base.bpb}


def _row(
    label: str, results: list[Any], objective: Objective, answer: MixResult, seconds: float
) -> dict[str, Any]:
    values = [objective.value(r.bpb) for r in results]
    names = list(results[0].bpb)
    mean, se = mean_and_se(values)
    return {
        "strategy": label,
        "objective": mean,
        "objective_se": se,
        "objective_per_seed": values,  # in the order of the evaluation seeds, shared by every row
        "bpb": {name: float(np.mean([r.bpb[name] for r in results])) for name in names},
        "weights": answer.weights,
        "schedule": results[0].schedule if label.endswith("+online") else answer.schedule,
        "compute": {
            "proxy_runs": answer.runs_used,
            "proxy_steps": answer.steps_used,
            "proxy_tokens": answer.steps_used * _tokens_per_step(results),
        },
        "search_seconds": seconds,
    }


def _tokens_per_step(results: list[Any]) -> int:
    return results[0].tokens // max(results[0].steps, 1)


def compare(
    env: ProxyEnvironment,
    problem: MixProblem,
    strategies: Sequence[Strategy],
    runner: Runner | None = None,
    eval_seeds: int = 3,
    eval_steps: int | None = None,
    closed_loop: bool = True,
) -> dict[str, Any]:
    """Run every strategy on ``problem`` and score its answer with ``eval_seeds`` fresh proxies of
    ``eval_steps`` updates (default: the budget's steps per run). Rows are sorted best first."""
    runner = runner or Runner()
    problem.objective.check(env.eval_names)
    steps = eval_steps or problem.budget.steps
    seeds = evaluation_seeds(problem, eval_seeds)
    answers: dict[str, tuple[MixResult, float]] = {}
    with runner.session():
        for strategy in strategies:
            started = time.perf_counter()
            answer = strategy.propose(env, problem, runner)
            answers[answer.strategy] = (answer, time.perf_counter() - started)
        grouped = score_answers(
            env, problem, [a for a, _ in answers.values()], runner, seeds, steps, closed_loop
        )
    rows = [
        _row(label, results, problem.objective, *answers[label.removesuffix("+online")])
        for label, results in grouped.items()
    ]
    rows.sort(key=lambda row: row["objective"])
    return {
        "problem": problem.describe(),
        "eval_suite": env.suite_hash,
        "scored_on": sorted({str(r.eval_suite) for results in grouped.values() for r in results}),
        "environment": env.describe(),
        "evaluation": {"seeds": seeds, "steps": steps},
        "rows": rows,
        "versus_baselines": versus_baselines({row["strategy"]: row["objective_per_seed"] for row in rows}),
        "reports": {name: answer.to_json()["report"] for name, (answer, _) in answers.items()},
        "runner": runner.describe(),
        "machine": machine(),
    }


def format_table(comparison: Mapping[str, Any]) -> str:
    """A plain-text table of the rows (objective, per-set bits per byte, compute)."""
    rows = comparison["rows"]
    sets = list(rows[0]["bpb"]) if rows else []
    header = ["strategy", "objective", "+- SE", *sets, "runs", "steps", "vs uniform", "vs natural"]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    versus = comparison["versus_baselines"]
    for row in rows:
        cells = [row["strategy"], f"{row['objective']:.4f}", f"{row['objective_se']:.4f}"]
        cells += [f"{row['bpb'][name]:.4f}" for name in sets]
        cells += [str(row["compute"]["proxy_runs"]), str(row["compute"]["proxy_steps"])]
        tests = versus.get(row["strategy"], {})
        cells += [tests[f"vs_{base}"]["verdict"] if f"vs_{base}" in tests else "-" for base in BASELINES]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def format_tests(comparison: Mapping[str, Any]) -> str:
    """One line per strategy and baseline: both means +- SE, the paired difference and its p-value."""
    lines = []
    for label, tests in comparison["versus_baselines"].items():
        for key, test in tests.items():
            diff = test["difference"]
            p_value = "-" if test["p_value"] is None else f"{test['p_value']:.3g}"
            lines.append(
                f"- {format_comparison(test, (label, key.removeprefix('vs_')))}; difference "
                f"{diff['mean']:+.4f} +- {diff['se']:.4f}, p={p_value}"
            )
    return "\n".join(lines)

"""``curate bench mixing``: every strategy at equal proxy compute, in two settings, from one seed.

(a) mixture search from scratch toward a target objective (mean bits per byte of ``code`` and ``math``,
    or ``code`` and ``news`` without ../shared/data);
(b) continual pretraining: a model trained on the source mix (every domain but the target) continues
    toward the target (``math``, or ``code``), objective balanced half source, half target;
(c) as (b) toward ``code``, for an agent whose training objectives never targeted code: the transfer
    question the seed paper asks, answered honestly whatever the answer is.

The agent is collected and trained first (its cost is reported separately: it is paid once and reused
across problems, as the paper intends), on trajectories from scratch and from the source model, with
hindsight objectives that exclude any objective targeting ``code``.

Everything is a function of the seed; figures go to OUT/bench-mixing.json, a table and a PNG plot.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.machine import machine
from bench.mixing_compare import compare, continual_problem, format_table
from bench.mixing_textdata import available_domains, cached_text_shards
from mixers.strategies.agent import Agent, TrainSettings, default_objectives, train_policy
from mixers.strategies.agent_trajectories import collect, save_trajectories
from mixers.strategies.base import Budget, MixProblem, Objective, Strategy
from mixers.strategies.baselines import Fixed, Natural, Temperature, Uniform
from mixers.strategies.doremi import DoReMi
from mixers.strategies.environment import ProxyConfig, ProxyEnvironment
from mixers.strategies.parallel import Runner
from mixers.strategies.regmix import RegMix

ROW_KEYS = ("strategy", "objective", "objective_se", "objective_per_seed", "bpb", "weights", "compute")


@dataclass(frozen=True)
class BenchSettings:
    """Sizes of the benchmark; ``quick()`` is a smoke run of the same code in about a minute."""

    runs: int = 16
    steps: int = 40
    stages: int = 4
    eval_seeds: int = 3
    pretrain_steps: int = 160
    agent_trajectories: int = 32
    docs_per_domain: int = 120
    max_chars: int = 3000
    vocab_size: int = 512
    proxy: ProxyConfig = ProxyConfig()

    @classmethod
    def quick(cls) -> BenchSettings:
        return cls(
            runs=4,
            steps=8,
            stages=2,
            eval_seeds=1,
            pretrain_steps=8,
            agent_trajectories=6,
            docs_per_domain=40,
            proxy=ProxyConfig(d_model=32, n_heads=2, seq_len=32, eval_tokens=1024),
        )


def strategies(agent: Agent | None, source: dict[str, float] | None) -> list[Strategy]:
    chosen: list[Strategy] = [
        Uniform(),
        Natural(),
        Temperature(2.0),
        RegMix(),
        RegMix(trust_region=False),
        DoReMi(),
    ]
    if source is not None:
        chosen.append(Fixed(source, label="source"))
    if agent is not None:
        chosen.append(agent)
    return chosen


def train_agent(
    env: ProxyEnvironment,
    settings: BenchSettings,
    seed: int,
    runner: Runner,
    source: dict[str, float],
    start: Any,
) -> tuple[Agent, dict[str, Any]]:
    """Trajectories from scratch and from the source model; objectives never targeting ``code``."""
    started = time.perf_counter()
    half = max(1, settings.agent_trajectories // 2)
    steps, stages = settings.steps, settings.stages
    scratch = collect(env, half, stages, steps, seed=seed + 1, runner=runner)
    continual = collect(
        env, half, stages, steps, seed=seed + 2, runner=runner, init_state=start, initial_weights=source
    )
    trajectories = scratch + continual
    objectives = [o for o in default_objectives(trajectories) if not _targets(o, "code")]
    policy = train_policy(trajectories, objectives, TrainSettings(seed=seed))
    cost = {
        "trajectories": len(trajectories),
        "proxy_steps": len(trajectories) * steps,
        "seconds": time.perf_counter() - started,
        "objectives": [o.to_json() for o in objectives],
        "metrics": policy.card["metrics"],
    }
    return Agent(policy), {"cost": cost, "trajectories": trajectories, "policy": policy}


def _targets(objective: Objective, domain: str) -> bool:
    """An objective that weighs ``domain`` above every other set targets it."""
    weights = dict(objective.weights)
    return objective.kind == "balanced" and weights.get(domain, 0.0) > max(
        (w for name, w in weights.items() if name != domain), default=0.0
    )


def bench_mixing(
    out: Path, seed: int = 0, settings: BenchSettings | None = None, parallel: bool = False
) -> dict[str, Any]:
    """Run the three settings and write OUT/bench-mixing.{json,md,png}; returns the figures."""
    settings = settings or BenchSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    domains = available_domains()
    shards = cached_text_shards(domains, settings.docs_per_domain, settings.max_chars, settings.vocab_size)
    env = ProxyEnvironment.open(shards, settings.proxy)
    runner = Runner.create(parallel)
    target = "math" if "math" in domains else "code"
    search_sets = ["code", target] if target != "code" else ["code", "news"]
    budget = Budget(settings.runs, settings.steps)
    source = {d: w for d, w in env.natural.items() if d != target}
    started = time.perf_counter()
    with runner.session():
        continual, start = continual_problem(
            env, source, [target], budget, settings.pretrain_steps, stages=settings.stages, seed=seed
        )
        agent, trained = train_agent(
            env, settings, seed, runner, continual.source_weights or source, continual.init_state
        )
        trained["policy"].save(out / "agent")
        save_trajectories(trained["trajectories"], out / "agent" / "trajectories.jsonl")
        problems = {
            "a_search": MixProblem(Objective.average(search_sets), budget, seed, settings.stages),
            f"b_continual_{target}": continual,
        }
        if target != "code":
            code_source = {d: w for d, w in env.natural.items() if d != "code"}
            problems["c_continual_code_unseen"] = continual_problem(
                env, code_source, ["code"], budget, settings.pretrain_steps, stages=settings.stages, seed=seed
            )[0]
        results = {
            name: compare(
                env,
                problem,
                strategies(agent, dict(problem.source_weights) if problem.source_weights else None),
                runner,
                settings.eval_seeds,
            )
            for name, problem in problems.items()
        }
    figures = {
        "settings": {**asdict(settings), "seed": seed, "domains": list(env.domains), "target": target},
        "environment": env.describe(),
        "agent": trained["cost"],
        "continual_start": start,
        "results": {name: _summary(result) for name, result in results.items()},
        "seconds": time.perf_counter() - started,
        "machine": machine(),
    }
    (out / "bench-mixing.json").write_text(
        json.dumps({**figures, "full": results}, indent=2, default=str) + "\n"
    )
    (out / "bench-mixing.md").write_text(markdown(figures, results))
    plot(results, out / "bench-mixing.png")
    return figures


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "objective": result["problem"]["objective"],
        "rows": [{k: row[k] for k in ROW_KEYS} for row in result["rows"]],
        "versus_baselines": result["versus_baselines"],
    }


def markdown(figures: dict[str, Any], results: dict[str, Any]) -> str:
    parts = [f"# bench mixing (seed {figures['settings']['seed']})\n"]
    for name, result in results.items():
        parts.append(f"## {name}: objective {json.dumps(result['problem']['objective']['weights'])}\n")
        parts.append(format_table(result) + "\n")
    return "\n".join(parts)


def plot(results: dict[str, Any], path: Path) -> None:
    """One panel per setting: each strategy's objective (mean over evaluation seeds, with its spread)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for axis, (name, result) in zip(axes[0], results.items(), strict=True):
        rows = result["rows"]
        names = [r["strategy"] for r in rows]
        axis.errorbar(  # points, not bars: the axis does not start at zero
            [r["objective"] for r in rows], names, xerr=[r["objective_se"] for r in rows], fmt="o", capsize=3
        )
        axis.grid(axis="x", alpha=0.3)
        axis.invert_yaxis()
        axis.set_title(name)
        axis.set_xlabel("objective (bits per byte, lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

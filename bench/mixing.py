"""``curate bench mixing``: every strategy at equal proxy compute, from one seed.

The data is a natural mixture (``curate run`` + ``curate mix --tokens``) of package and ../shared/data
text, and every run of every strategy, search and final scoring alike, is scored on that corpus's fixed
evaluation suite (``mixers.suite``), whose hash the figures record.

``--setting standard`` (the default) runs three problems:

(a) mixture search from scratch toward a target objective (mean bits per byte of ``code`` and ``math``,
    or ``code`` and ``news`` without ../shared/data);
(b) continual pretraining: a model trained on the source mix (every domain but the target) continues
    toward the target (``math``, or ``code``), objective balanced half source, half target;
(c) as (b) toward ``code``, for an agent whose training objectives never targeted code: the transfer
    question the seed paper asks, answered honestly whatever the answer is.

The agent is collected and trained first (its cost is reported separately: it is paid once and reused
across problems, as the paper intends), on trajectories from scratch and from the source model, with
hindsight objectives that exclude any objective targeting ``code``.

``--setting target-small`` asks one question where a search should pay if it ever does: a target domain
that is small in the natural mix (``math``, or ``news`` without ../shared/data), the objective its bits
per byte on the suite, RegMix (with and without its trust region), Skill-It and the agent against uniform and
natural at equal search compute, scored on more fresh paired seeds than the standard setting
(:func:`bench_target_small`).

Everything is a function of the seed; figures go to OUT/bench-mixing.json, a table and a PNG plot.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench.machine import machine
from bench.mixing_compare import compare, continual_problem, format_table, format_tests
from bench.mixing_textdata import available_domains, cached_text_mixture
from curate.errors import ConfigError
from mixers.strategies.agent import Agent, TrainSettings, default_objectives, train_policy
from mixers.strategies.agent_trajectories import collect, save_trajectories
from mixers.strategies.base import Budget, MixProblem, Objective, Strategy
from mixers.strategies.baselines import Fixed, Natural, Temperature, Uniform
from mixers.strategies.doremi import DoReMi
from mixers.strategies.environment import ProxyConfig, ProxyEnvironment
from mixers.strategies.parallel import Runner
from mixers.strategies.regmix import RegMix
from mixers.strategies.skillit import SkillIt

ROW_KEYS = ("strategy", "objective", "objective_se", "objective_per_seed", "bpb", "weights", "compute")
SETTINGS = ("standard", "target-small")


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
    target_docs: int | None = None  # the target domain's documents (target-small: fewer, a small share)
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

    @classmethod
    def target_small(cls, quick: bool = False) -> BenchSettings:
        """The target-small setting: 5 fresh paired seeds for the final scoring, the target domain at a
        few per cent of the natural mix (80 short GSM8K problems beside 120 documents of up to 3,000
        characters per other domain)."""
        if quick:
            return replace(cls.quick(), eval_seeds=2, target_docs=20)
        return cls(eval_seeds=5, target_docs=80)

    @classmethod
    def named(cls, setting: str, quick: bool = False) -> BenchSettings:
        if setting not in SETTINGS:
            raise ConfigError(f"--setting {setting}: choose one of {', '.join(SETTINGS)}")
        if setting == "target-small":
            return cls.target_small(quick)
        return cls.quick() if quick else cls()

    def environment(self, domains: tuple[str, ...], target: str | None = None) -> ProxyEnvironment:
        """The proxy environment on the cached natural mixture of these settings (and its suite)."""
        counts = {
            d: self.target_docs if d == target and self.target_docs else self.docs_per_domain for d in domains
        }
        mixture = cached_text_mixture(domains, counts, self.max_chars, self.vocab_size)
        return ProxyEnvironment.open(mixture, self.proxy)


def strategies(agent: Agent | None, source: dict[str, float] | None) -> list[Strategy]:
    chosen: list[Strategy] = [
        Uniform(),
        Natural(),
        Temperature(2.0),
        RegMix(),
        RegMix(trust_region=False),
        DoReMi(),
        SkillIt(),
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
    env = settings.environment(domains)
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
        "eval_suite": env.suite_hash,
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


def target_agent(
    env: ProxyEnvironment, settings: BenchSettings, problem: MixProblem, runner: Runner
) -> tuple[Agent, dict[str, Any]]:
    """The agent of the target-small setting: trajectories from scratch (their own seeds), trained on the
    hindsight objectives plus the problem's own (known before the search, as in the paper)."""
    started = time.perf_counter()
    trajectories = collect(
        env,
        settings.agent_trajectories,
        settings.stages,
        settings.steps,
        seed=problem.seed + 1,
        runner=runner,
    )
    objectives = [*default_objectives(trajectories), problem.objective]
    policy = train_policy(trajectories, objectives, TrainSettings(seed=problem.seed))
    cost = {
        "trajectories": len(trajectories),
        "proxy_steps": len(trajectories) * settings.steps,
        "seconds": time.perf_counter() - started,
        "metrics": policy.card["metrics"],
    }
    return Agent(policy), cost


def bench_target_small(
    out: Path,
    seed: int = 0,
    settings: BenchSettings | None = None,
    parallel: bool = False,
    domains: Sequence[str] | None = None,
) -> dict[str, Any]:
    """RegMix, Skill-It and the agent against uniform and natural on a target domain small in the mix,
    objective the target's bits per byte on the suite; writes OUT/bench-mixing.{json,md,png}.

    Fair by construction: every strategy searches with the same proxy budget and seed, every answer is
    trained again on ``eval_seeds`` fresh seeds no search used (the same seeds for all: a paired test), and
    every run is scored on the same suite documents, none of which any run trained on. CPU seconds (this
    process and its children) and the load average are recorded beside the wall clock: the machine is shared.
    ``domains`` (default: all available) lets a test run it on the package-shipped three.
    """
    settings = settings or BenchSettings.target_small()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    domains = tuple(domains or available_domains())
    target = "math" if "math" in domains else "news"
    clock = CpuClock()
    env = settings.environment(domains, target)
    runner = Runner.create(parallel)
    problem = MixProblem(
        Objective.average([target]), Budget(settings.runs, settings.steps), seed, settings.stages
    )
    with runner.session():
        agent, agent_cost = target_agent(env, settings, problem, runner)
        chosen = [Uniform(), Natural(), RegMix(), RegMix(trust_region=False), SkillIt(), agent]
        result = compare(env, problem, chosen, runner, settings.eval_seeds)
    figures = {
        "setting": "target-small",
        "settings": {**asdict(settings), "seed": seed, "domains": list(env.domains), "target": target},
        "eval_suite": env.suite_hash,
        "environment": env.describe(),
        "search_seeds": {"strategies": seed, "agent_trajectories": seed + 1},
        "evaluation": result["evaluation"],
        "agent": agent_cost,
        "results": {"target_small": _summary(result)},
        **clock.read(),
        "machine": machine(),
    }
    (out / "bench-mixing.json").write_text(
        json.dumps({**figures, "full": {"target_small": result}}, indent=2, default=str) + "\n"
    )
    (out / "bench-mixing.md").write_text(markdown(figures, {"target_small": result}))
    plot({"target_small": result}, out / "bench-mixing.png")
    return figures


class CpuClock:
    """Wall and CPU seconds (this process and its finished children) since creation, and the load average
    at both ends: on a shared machine CPU time is the figure to compare, the load says how shared it was."""

    def __init__(self) -> None:
        self.wall, self.cpu, self.load = time.perf_counter(), _cpu_seconds(), os.getloadavg()

    def read(self) -> dict[str, Any]:
        return {
            "seconds": time.perf_counter() - self.wall,
            "cpu_seconds": _cpu_seconds() - self.cpu,
            "load_average": {"start": self.load, "end": os.getloadavg()},
        }


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "objective": result["problem"]["objective"],
        "eval_suite": result["eval_suite"],
        "rows": [{k: row[k] for k in ROW_KEYS} for row in result["rows"]],
        "versus_baselines": result["versus_baselines"],
    }


def markdown(figures: dict[str, Any], results: dict[str, Any]) -> str:
    parts = [f"# bench mixing (seed {figures['settings']['seed']})\n"]
    for name, result in results.items():
        parts.append(f"## {name}: objective {json.dumps(result['problem']['objective']['weights'])}\n")
        parts.append(
            f"evaluation suite {result['eval_suite']}; fresh seeds {result['evaluation']['seeds']}\n"
        )
        parts.append(format_table(result) + "\n")
        parts.append(format_tests(result) + "\n")
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

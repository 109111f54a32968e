"""The mixing-strategy commands (`curate mixsearch`, `curate agent collect|train|run`), wired by the
CLI root (api/main.py), which prints user errors as one line and exits 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from curate.errors import ConfigError

Parallel = Annotated[bool, typer.Option("--ray/--sequential", help="proxy runs as parallel Ray tasks")]


def _proxy(fields: str | None) -> Any:
    """--proxy 'd_model=48,seq_len=64' -> ProxyConfig (unknown fields fail by name)."""
    from mixers.strategies.search import proxy_config

    values: dict[str, Any] = {}
    for item in filter(None, (fields or "").split(",")):
        name, _, raw = item.partition("=")
        try:
            values[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[name.strip()] = raw
    return proxy_config(values)


def parse_objective_text(text: str, domains: list[str]) -> Any:
    """`average` | `average:a,b` | `weights:a=0.7,b=0.3` | `balanced:src1,src2->tgt@0.5`."""
    from mixers.strategies.base import Objective

    kind, _, rest = text.partition(":")
    if kind == "average":
        return Objective.average(rest.split(",") if rest else domains)
    if kind == "weights" and rest:
        pairs = (item.split("=") for item in rest.split(","))
        return Objective({name: float(value) for name, value in pairs})
    if kind == "balanced" and "->" in rest:
        sides, _, balance = rest.partition("@")
        source, _, target = sides.partition("->")
        return Objective.balanced(source.split(","), target.split(","), float(balance or 0.5))
    raise ConfigError(
        f"objective {text!r}: use average[:a,b], weights:a=0.7,b=0.3 or balanced:src1,src2->target[@0.5]"
    )


def mixsearch(
    config: Annotated[
        Path, typer.Argument(help="mixsearch YAML (tokens, strategy, objective, budget, mixture)")
    ],
    out: Annotated[Path | None, typer.Option(help="spec to write (overrides `output:`)")] = None,
    ray: Annotated[bool | None, typer.Option("--ray/--sequential", help="override `parallel:`")] = None,
) -> None:
    """Choose domain weights with a strategy on tiny proxies (or, with the objective critical_ratio, the
    largest share of a domain a continual run can take); write a mixture spec for `curate mix`."""
    from mixers.significance import format_comparison
    from mixers.strategies.search import mixsearch as run_search

    report = run_search(config, out, None if ray is None else ("ray" if ray else "sequential"))
    if "critical_ratio" in report:
        from mixers.strategies.critical_ratio import format_report

        typer.echo(format_report(report["critical_ratio"]))
    result = report["result"]
    shown = ", ".join(f"{d}={w:.3f}" for d, w in result["weights"].items())
    typer.echo(f"{result['strategy']}: {shown}; wrote {report['spec']} (take it with `curate mix`)")
    suite = report["eval_suite"]
    typer.echo(
        f"  scored on evaluation suite {suite[:12]}"
        if suite
        else "  no evaluation suite (plain token shards): a held-out split of their own documents scored"
    )
    for base, test in (report.get("check") or {}).get("versus", {}).items():
        typer.echo(f"  {base.replace('_', ' ')}: {format_comparison(test, (result['strategy'], base[3:]))}")


def agent_collect(
    tokens: Annotated[Path, typer.Argument(help="token shards of a multi-domain corpus")],
    out: Annotated[Path, typer.Option(help="folder for trajectories.jsonl")],
    trajectories: Annotated[int, typer.Option(min=1, help="proxy runs with random schedules")] = 32,
    stages: Annotated[int, typer.Option(min=1, help="re-weighting points per run")] = 4,
    steps: Annotated[int, typer.Option(min=1, help="updates per proxy run")] = 40,
    seed: int = 0,
    continual_from: Annotated[
        str | None, typer.Option(help="weights 'a=0.5,b=0.5': start every run from a model of this mix")
    ] = None,
    pretrain_steps: Annotated[int, typer.Option(min=1, help="updates of that starting model")] = 160,
    proxy: Annotated[str | None, typer.Option(help="proxy fields, e.g. 'd_model=48,seq_len=64'")] = None,
    parallel: Parallel = False,
) -> None:
    """Collect re-weighting trajectories (evaluated at every stage) for `curate agent train`."""
    from mixers.strategies.agent_trajectories import TRAJECTORIES_FILE, collect, save_trajectories
    from mixers.strategies.environment import ProxyEnvironment
    from mixers.strategies.parallel import Runner

    try:
        env = ProxyEnvironment.open(tokens, _proxy(proxy))
        state, source = None, None
        if continual_from:
            source = {k: float(v) for k, v in (item.split("=") for item in continual_from.split(","))}
            state, _ = env.pretrain(source, pretrain_steps, seed=seed + 7919)
        runner = Runner.create(parallel)
        found = collect(env, trajectories, stages, steps, seed, runner, state, source)
        path = save_trajectories(found, out / TRAJECTORIES_FILE)
    except ValueError as error:  # a bad --continual-from value; a ConfigError passes through as is
        raise error if isinstance(error, ConfigError) else ConfigError(str(error)) from None
    typer.echo(f"{len(found)} trajectories of {stages} stages -> {path}")


def agent_train(
    data: Annotated[list[Path], typer.Argument(help="trajectory files or collect folders (merged)")],
    out: Annotated[Path, typer.Option(help="folder for policy.pt + card.json")],
    objective: Annotated[
        list[str] | None,
        typer.Option(help="training objectives (repeatable); default: average + each target"),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="gradient epochs per fitted-Q iteration")] = 150,
    cql_alpha: Annotated[float, typer.Option(min=0.0, help="conservative penalty weight")] = 0.1,
    seed: int = 0,
) -> None:
    """Train the mixing agent offline (conservative fitted-Q) and save it with its card."""
    from mixers.strategies.agent import TrainSettings, train_policy
    from mixers.strategies.agent_trajectories import load_trajectories

    trajectories = load_trajectories(data)
    domains = sorted({d for t in trajectories for d in t["domains"]})
    objectives = [parse_objective_text(text, domains) for text in objective or []]
    settings = TrainSettings(epochs=epochs, cql_alpha=cql_alpha, seed=seed)
    policy = train_policy(trajectories, objectives or None, settings)
    folder = policy.save(out)
    typer.echo(json.dumps({"agent": str(folder), "metrics": policy.card["metrics"]}, indent=2))


def agent_run(
    policy: Annotated[Path, typer.Argument(help="a trained agent folder")],
    tokens: Annotated[Path, typer.Argument(help="token shards to run on (any domains)")],
    objective: Annotated[str, typer.Option(help="average | weights:a=1 | balanced:src->tgt@0.5")] = "average",
    runs: Annotated[int, typer.Option(min=1, help="rollouts (the first greedy)")] = 4,
    steps: Annotated[int, typer.Option(min=1, help="updates per rollout")] = 40,
    stages: Annotated[int, typer.Option(min=1)] = 4,
    seed: int = 0,
    proxy: Annotated[str | None, typer.Option(help="proxy fields, e.g. 'd_model=48,seq_len=64'")] = None,
    parallel: Parallel = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the full result here")] = None,
) -> None:
    """Let the agent re-weight proxy runs stage by stage; print its schedule and weights."""
    from mixers.strategies.agent import Agent
    from mixers.strategies.base import Budget, MixProblem
    from mixers.strategies.environment import ProxyEnvironment
    from mixers.strategies.parallel import Runner

    env = ProxyEnvironment.open(tokens, _proxy(proxy))
    problem = MixProblem(parse_objective_text(objective, env.domains), Budget(runs, steps), seed, stages)
    result = Agent(policy).propose(env, problem, Runner.create(parallel))
    if json_out:
        json_out.write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    typer.echo(json.dumps({"weights": result.weights, "schedule": result.schedule}, indent=2))

"""The one `curate` command line: every package's commands joined, and user errors handled once, here.

It is an entry point, above every layer: it may import any package, and nothing imports it. A
`ConfigError` (or a subclass, such as a mixture's `MixError`) raised by any command prints one line,
`error: ...`, and exits 2; it never shows a traceback. Service client errors keep their own exit codes
(see `curate jobs --help`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

import curate
from curate.config import load_config
from curate.errors import ConfigError
from curate.executors import Executor


def hide_flag_types(command: click.Command) -> None:
    """Flags take no value, so their help shows none (typer would print `<bool>` beside every flag)."""
    help_option = command.get_help_option(click.Context(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        hide_flag_types(sub)


class OneLineErrors(TyperGroup):
    """The root group: a user error raised anywhere below it becomes one line and exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        hide_flag_types(self)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=OneLineErrors,
    help="curate: raw web shards in, curated Parquet corpus and scored mixtures out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def print_version(value: bool) -> None:
    if value:
        typer.echo(f"curate {curate.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=print_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    """curate: raw web shards in, curated Parquet corpus and scored mixtures out."""


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="pipeline YAML (inputs, stages, output)")],
    executor: Annotated[
        Executor, typer.Option(help="local process pool (embedded default) or a Ray cluster")
    ] = "local",
    workers: Annotated[int, typer.Option(min=1, help="worker processes (local) or actors (ray)")] = 1,
    ray_address: Annotated[
        str | None, typer.Option(help="join this Ray cluster instead of starting one")
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(help="output folder, or a URL such as s3://bucket/prefix (overrides `output:`)"),
    ] = None,
) -> None:
    """Curate the config's input shards into OUT/corpus, OUT/rejects and OUT/manifest.json (resumable)."""
    from curate.run import run_pipeline

    manifest = run_pipeline(load_config(config, out), executor, workers, ray_address)
    print_summary(manifest)


def print_summary(manifest: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    totals = manifest["totals"]
    console = Console()
    console.print(
        f"read {totals['read']:,}  kept {totals['kept']:,}  rejected {totals['rejected']:,}  "
        f"duplicates {totals['duplicates']:,}  in {manifest['wall_seconds']:.1f}s"
    )
    table = Table("stage", "in", "out", "dropped by reason")
    for counts in manifest["stages"]:
        dropped = ", ".join(f"{r}={n}" for r, n in counts["dropped"].items()) or "-"
        table.add_row(counts["stage"], f"{counts['in']:,}", f"{counts['out']:,}", dropped)
    console.print(table)
    console.print("domains: " + ", ".join(f"{d}={n:,}" for d, n in manifest["domains"].items()))


@app.command()
def inspect(
    out: Annotated[str, typer.Argument(help="an output folder or URL of `curate run`, or a mixture folder")],
    samples: Annotated[int, typer.Option(min=0, help="sample rows to show")] = 3,
    plots: Annotated[
        Path | None, typer.Option(help="mixtures: folder for PNG plots (default MIX/report)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """A corpus: counts by domain and reject reason, the funnel, samples (DuckDB). A mixture: requested vs
    achieved shares, tokens, epochs, mean scores, and PNG plots."""
    from curate.inspect import inspect_output, render_inspection
    from mixers import cli as mix_cli

    if mix_cli.is_mixture(Path(out)):
        mix_cli.inspect_mixture(Path(out), plots, as_json)
        return
    report = inspect_output(out, samples)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        render_inspection(report)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where the demo corpus goes")] = Path(".cache/demo/out"),
    workers: Annotated[int, typer.Option(min=1)] = 2,
    proxy_tokens: Annotated[
        int, typer.Option(min=10_000, help="tokens the tiny proxy trains on (fewer: faster, a noisier score)")
    ] = 100_000,
) -> None:
    """The embedded default main job: real text in, a curated corpus and a training mixture out."""
    from api.demo import demo_decisions, run_demo

    manifest = run_demo(out, workers, proxy_tokens)
    print_summary(manifest)
    for line in demo_decisions(manifest):
        typer.echo(line)
    mixture = manifest["mixture"]
    typer.echo(f"mixture: {out.parent / 'mix'}  " + json.dumps(mixture.get("totals", {})))
    proxy = manifest["proxy"]
    per_domain = {d: round(v["bpb"], 3) for d, v in proxy.get("domains", {}).items() if "bpb" in v}
    score = proxy["score"]
    typer.echo(f"proxy score (mean bits per byte on the evaluation suite, lower is better): {score:.4f}")
    typer.echo(f"  per domain: {per_domain}")


@app.command()
def stages(
    name: Annotated[
        str | None, typer.Argument(help="one stage: its params, columns and drop reasons")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """The stages a pipeline can use (built in and from installed packages), read from their code."""
    from curate.stages.catalog import catalog, describe_stage
    from curate.stages.registry import stage_names

    if name is not None and name not in stage_names():
        raise ConfigError(f"unknown stage {name!r}; known stages: {', '.join(stage_names())}")
    try:
        described = describe_stage(name) if name else catalog()
    except (ImportError, TypeError) as error:
        raise ConfigError(
            f"stage {name!r} cannot be loaded ({error}); reinstall the package providing it"
        ) from None
    if as_json:
        typer.echo(json.dumps(described, indent=2))
    elif name:
        print_stage(described)
    else:
        print_stage_list(described)


def print_stage_list(stages: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table("stage", "what it does", "adds", "drop reasons")
    for stage in stages:
        columns = ", ".join(c["name"] for c in stage["columns"]) or "-"
        cells = (stage["name"], stage["summary"], columns, ", ".join(stage["drops"]) or "-")
        table.add_row(*(escape(cell) for cell in cells))
    Console().print(table)


def print_stage(stage: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    console.print(f"{stage['name']}: {stage['summary']}", markup=False, highlight=False)
    params = Table("param", "type", "default", "meaning", title="params (`- NAME: {param: value}`)")
    params.columns[0].overflow = "fold"
    for p in stage["params"]:
        cells = (p["name"], p["type"], json.dumps(p["default"]), p["help"] or "")
        params.add_row(*(escape(cell) for cell in cells))
    console.print(params)
    columns = Table("column", "type", title="columns it adds")
    for c in stage["columns"]:
        columns.add_row(escape(c["name"]), escape(c["type"]))
    console.print(columns if stage["columns"] else "columns it adds: none")
    drops = Table("reject reason", "when", title="what it drops")
    for reason, when in stage["drops"].items():
        drops.add_row(escape(reason), escape(when))
    console.print(drops if stage["drops"] else "drops: nothing")


def _register_package_commands() -> None:
    """Commands that live beside their package (models, training, mixtures, the service, benchmarks)."""
    from api.cli import jobs_app, schedules_app, serve_command
    from bench.cli import bench_app
    from filters.cli import models_app
    from mixers import cli as mix_cli
    from mixers.strategies import cli as strategy_cli
    from trainer import cli as train_cli

    app.command("train")(train_cli.train)
    app.command("eval")(train_cli.evaluate)
    app.command("score")(train_cli.score)
    app.command("compare")(train_cli.compare)
    app.command("mix")(mix_cli.mix)
    app.command("serve")(serve_command)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(schedules_app, name="schedules")
    app.add_typer(models_app, name="models")
    app.add_typer(bench_app, name="bench")
    app.command("mixsearch")(strategy_cli.mixsearch)
    agent_app = typer.Typer(
        help="The learned mixing agent: collect trajectories, train, run.", no_args_is_help=True
    )
    agent_app.command("collect")(strategy_cli.agent_collect)
    agent_app.command("train")(strategy_cli.agent_train)
    agent_app.command("run")(strategy_cli.agent_run)
    app.add_typer(agent_app, name="agent")


_register_package_commands()


def main() -> None:
    app(prog_name="curate")


if __name__ == "__main__":
    sys.exit(main())

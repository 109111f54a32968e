"""The `curate` command line. User errors print one line and exit 2; they never show a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from curate.config import load_config
from curate.errors import ConfigError

app = typer.Typer(
    help="curate: raw web shards in, curated Parquet corpus and scored mixtures out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks that print JSON figures (see BENCHMARKS.md).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="pipeline YAML (inputs, stages, output)")],
    executor: Annotated[str, typer.Option(help="local (embedded default) or ray")] = "local",
    workers: Annotated[int, typer.Option(min=1, help="worker processes (local) or actors (ray)")] = 1,
    ray_address: Annotated[
        str | None, typer.Option(help="join this Ray cluster instead of starting one")
    ] = None,
    out: Annotated[
        str | None, typer.Option(help="output directory (overrides `output:` in the config)")
    ] = None,
) -> None:
    """Curate the config's input shards into OUT/corpus, OUT/rejects and OUT/manifest.json (resumable)."""
    from curate.run import run_pipeline

    if executor not in ("local", "ray"):
        fail(f"--executor {executor!r} is not known; use local or ray")
    try:
        manifest = run_pipeline(load_config(config, out), executor, workers, ray_address)  # type: ignore[arg-type]
    except ConfigError as error:
        fail(str(error))
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
    out: Annotated[Path, typer.Argument(help="an output directory of `curate run`, or a mixture folder")],
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

    if mix_cli.is_mixture(out):
        mix_cli.inspect_mixture(out, plots, as_json)
        return
    try:
        report = inspect_output(out, samples)
    except ConfigError as error:
        fail(str(error))
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        render_inspection(report)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where the demo corpus goes")] = Path(".cache/demo/out"),
    workers: Annotated[int, typer.Option(min=1)] = 2,
) -> None:
    """The embedded default main job: real text in, a curated corpus and a training mixture out."""
    from curate.demo import run_demo

    try:
        manifest = run_demo(out, workers)
    except ConfigError as error:
        fail(str(error))
    print_summary(manifest)
    mixture = manifest["mixture"]
    typer.echo(f"mixture: {out.parent / 'mix'}  " + json.dumps(mixture.get("totals", {})))
    proxy = manifest["proxy"]
    per_domain = {d: round(v["bpb"], 3) for d, v in proxy.get("domains", {}).items() if "bpb" in v}
    typer.echo(f"proxy score (mean held-out bits per byte, lower is better): {proxy.get('score'):.4f}")
    typer.echo(f"  per domain: {per_domain}")


@bench_app.command("pipeline")
def bench_pipeline(
    mb: Annotated[int, typer.Option(min=1, help="megabytes of real text to assemble")] = 100,
    workers: Annotated[int, typer.Option(min=1)] = 2,
    executors: Annotated[str, typer.Option(help="comma-separated: local,ray")] = "local,ray",
    shard_mb: Annotated[int, typer.Option(min=1, help="size of each input shard")] = 8,
) -> None:
    """read + normalize + tag + write throughput (docs/s, MB/s per core, peak RSS) on real text."""
    from bench.pipeline import bench_pipeline as run_bench

    try:
        figures = run_bench(mb, workers, executors.split(","), shard_mb)
    except ConfigError as error:
        fail(str(error))
    typer.echo(json.dumps(figures, indent=2))


@bench_app.command("minhash")
def bench_minhash(
    repeats: Annotated[int, typer.Option(min=1, help="timed repeats of ours and rensa")] = 3,
) -> None:
    """MinHash signatures (shingling included), one core: ours vs rensa vs datasketch on >= 20 MB."""
    from bench.minhash import bench_minhash as run_bench

    typer.echo(json.dumps(run_bench(repeats=repeats), indent=2))


@bench_app.command("dedup")
def bench_dedup(
    input_paths: Annotated[
        list[str] | None, typer.Option("--input", help="JSONL shard, glob or folder (repeatable)")
    ] = None,
    docs: Annotated[
        list[int] | None, typer.Option(help="generated corpus sizes when no --input (repeatable)")
    ] = None,
    workers: Annotated[int, typer.Option(min=1)] = 2,
    peer_docs: Annotated[int, typer.Option(min=0, help="documents given to the peers end to end")] = 5_000,
    json_output: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """Dedup: signature MB/s per core, end-to-end docs/s and peak RSS (per million documents) of a real
    normalize + dedup run, with datasketch / rensa / DataTrove as ratios when installed."""
    from bench.dedup_scale import bench_dedup as run_bench
    from bench.dedup_scale import format_report

    try:
        result = run_bench(input_paths or None, docs or [100_000], workers, peer_docs)
    except ConfigError as error:
        fail(str(error))
    typer.echo(json.dumps(result, indent=2) if json_output else format_report(result))


@bench_app.command("dedup-quality")
def bench_dedup_quality(
    originals: Annotated[int, typer.Option(min=50, help="real documents before edited copies")] = 6000,
    shards: Annotated[int, typer.Option(min=1)] = 8,
    seed: int = 0,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    bands: Annotated[int | None, typer.Option(help="override dedup.bands")] = None,
) -> None:
    """Dedup pair precision/recall vs exact 5-gram Jaccard at 0.7 and 0.8, verify=signature and exact."""
    from bench.dedup_quality import bench_dedup_quality as run_bench

    try:
        figures = run_bench(
            originals=originals, shards=shards, seed=seed, workers=workers,
            dedup={"bands": bands} if bands else None,
        )  # fmt: skip
    except ConfigError as error:
        fail(str(error))
    typer.echo(json.dumps(figures, indent=2))


@bench_app.command("filters")
def bench_filters(
    input_path: Annotated[
        Path | None,
        typer.Option(
            "--input",
            exists=True,
            help="a JSONL shard (.jsonl/.json/.ndjson, plain, gzip or zstd) or a folder of them "
            "(default: the real-text corpus of `curate bench pipeline`, built from ../shared/data)",
        ),
    ] = None,
    mb: Annotated[
        float, typer.Option(min=0.1, help="MB of text measured: the corpus built, or a prefix of --input")
    ] = 100.0,
    json_output: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
    peer_docs: Annotated[
        int, typer.Option(min=0, help="evenly spaced documents given to DataTrove (~50 docs/s); 0 = all")
    ] = 2000,
) -> None:
    """Docs/s and MB/s per core (CPU time, one thread) of each filter stage and of the whole annotate
    chain, beside DataTrove's FineWeb chain on the same documents when datatrove is installed."""
    from bench.filter_stages import bench_filters as run_bench
    from bench.filter_stages import format_table

    try:
        figures = run_bench(
            input_path, mb=mb, peer_docs=peer_docs or None, log=lambda m: typer.echo(m, err=True)
        )
    except (ValueError, FileNotFoundError) as error:  # ConfigError is a ValueError
        fail(str(error))
    typer.echo(json.dumps(figures, indent=2) if json_output else format_table(figures))


@bench_app.command("api")
def bench_api(
    clients: Annotated[int, typer.Option(min=1)] = 50,
    seconds: Annotated[float, typer.Option(min=1)] = 30.0,
) -> None:
    """Status polling under load while a job runs: requests/s, p50/p99 latency, errors (JSON)."""
    from bench.api_load import bench_api as run_bench

    typer.echo(json.dumps(run_bench(clients, seconds), indent=2))


@bench_app.command("rules")
def bench_rules(
    mb: Annotated[float, typer.Option(min=0.1, help="megabytes of real documents")] = 4.0,
    repeats: Annotated[int, typer.Option(min=1)] = 3,
    peer_docs: Annotated[int | None, typer.Option(help="cap on documents given to DataTrove (slow)")] = None,
) -> None:
    """The heuristic rule chain vs DataTrove's FineWeb chain (Gopher + C4 + FineWeb), one core, CPU time."""
    from bench.rule_chain import bench_rules as run_bench
    from bench.rule_chain import build_corpus

    try:
        texts = build_corpus(max_mb=mb)
    except FileNotFoundError as error:
        fail(str(error))
    typer.echo(json.dumps(run_bench(texts, repeats=repeats, datatrove_max_docs=peer_docs), indent=2))


@bench_app.command("fuzz")
def bench_fuzz(
    cases: Annotated[int, typer.Option(min=1, help="mutated shards to put through `curate run`")] = 2000,
    seed: Annotated[int, typer.Option(help="seed of the mutations")] = 0,
) -> None:
    """Mutated real shards of every format through `curate run`: tracebacks, hangs, unaccounted files."""
    from bench.fuzz_inputs import fuzz

    try:
        figures = fuzz(cases, seed)
    except FileNotFoundError as error:
        fail(str(error))
    typer.echo(json.dumps(figures, indent=2))


@bench_app.command("memory")
def bench_memory(
    mb: Annotated[
        list[float] | None, typer.Option(help="document sizes, millions of characters (repeatable)")
    ] = None,
    unit: Annotated[list[str] | None, typer.Option(help="stages / dedup units (default: all)")] = None,
    run: Annotated[bool, typer.Option(help="also measure a whole `curate run` per size")] = True,
) -> None:
    """Peak RSS that one huge real document costs each stage, the dedup units and a whole run."""
    from bench.doc_memory import DEFAULT_SIZES_MB
    from bench.doc_memory import bench_memory as run_bench

    try:
        figures = run_bench(mb or list(DEFAULT_SIZES_MB), unit or None, run)
    except FileNotFoundError as error:
        fail(str(error))
    typer.echo(json.dumps(figures, indent=2))


def _register_package_commands() -> None:
    """Commands that live beside their package (mixtures, the service) join the one `curate` app here."""
    from api.cli import jobs_app, schedules_app, serve_command
    from filters.cli import models_app
    from mixers import cli as mix_cli
    from mixers.strategies import cli as strategy_cli
    from trainer import cli as train_cli

    app.command("train")(train_cli.train)
    app.command("eval")(train_cli.evaluate)
    app.command("score")(train_cli.score)
    bench_app.command("train")(train_cli.bench_train)
    bench_app.command("filtering")(train_cli.bench_filtering)
    app.command("mix")(mix_cli.mix)
    bench_app.command("mix")(mix_cli.bench_mix)
    app.command("serve")(serve_command)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(schedules_app, name="schedules")
    app.add_typer(models_app, name="models")
    app.command("mixsearch")(strategy_cli.mixsearch)
    agent_app = typer.Typer(
        help="The learned mixing agent: collect trajectories, train, run.", no_args_is_help=True
    )
    agent_app.command("collect")(strategy_cli.agent_collect)
    agent_app.command("train")(strategy_cli.agent_train)
    agent_app.command("run")(strategy_cli.agent_run)
    app.add_typer(agent_app, name="agent")
    bench_app.command("mixing")(strategy_cli.bench_mixing)


_register_package_commands()


def main() -> None:
    app(prog_name="curate")


if __name__ == "__main__":
    sys.exit(main())

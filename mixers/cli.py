"""The mixture commands, ready to register on the `curate` typer app (see the wiring note below).

    from mixers import cli as mix_cli
    app.command("mix")(mix_cli.mix)
    bench_app.command("mix")(mix_cli.bench_mix)
    # in `inspect`: if mix_cli.is_mixture(out): return mix_cli.inspect_mixture(out, plots, as_json)

User errors print one line (`error: ...`) and exit 2, never a traceback, like the rest of the CLI;
warnings (weights normalised, a domain repeated) print as `warning: ...` lines while the build runs.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from curate.errors import ConfigError
from mixers.errors import MixWarning
from mixers.output import is_mixture

__all__ = ["bench_mix", "inspect_mixture", "is_mixture", "mix"]


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _print_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    typer.echo(f"{'warning' if issubclass(category, MixWarning) else category.__name__}: {message}", err=True)


def mix(
    spec: Annotated[Path, typer.Argument(help="mixture YAML (corpora, domains, budget, tokenizer, seed)")],
    tokens: Annotated[bool, typer.Option("--tokens", help="also write MIX/tokens/ (token shards)")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="refuse weights that do not sum to 1")] = False,
    out: Annotated[Path | None, typer.Option(help="mixture folder (overrides `output:` in the spec)")] = None,
) -> None:
    """Sample curated corpora into MIX/part-*.parquet + MIX/manifest.json by domain weights and budget."""
    from mixers.sampler import mix_file

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", MixWarning)
            warnings.showwarning = _print_warning
            manifest = mix_file(spec, out, tokens, strict, echo=lambda line: typer.echo(line, err=True))
    except ConfigError as error:
        _fail(str(error))
    totals = manifest["totals"]
    typer.echo(
        f"{totals['documents']:,} documents, {totals['achieved_tokens']:,} tokens "
        f"(requested {totals['requested_tokens']:,}); see them with `curate inspect MIX`"
    )


def inspect_mixture(
    mix: Annotated[Path, typer.Argument(help="a mixture folder written by `curate mix`")],
    plots: Annotated[Path | None, typer.Option(help="folder for the PNG plots (default MIX/report)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """Per domain: requested vs achieved share, tokens, epochs, mean scores; PNG plots of shares, scores."""
    from mixers.report import inspect_mixture as run_report
    from mixers.report import render_mixture_report

    try:
        report = run_report(mix, plots)
    except ConfigError as error:
        _fail(str(error))
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        render_mixture_report(report)


def bench_mix(
    mb: Annotated[int, typer.Option(min=1, help="corpus size on disk (Parquet MB) to mix from")] = 1024,
    workers: Annotated[int, typer.Option(min=1, help="workers for building the corpus (cached)")] = 2,
    exact: Annotated[
        bool, typer.Option("--exact/--no-exact", help="also time exact token counting (slow, cached)")
    ] = False,
) -> None:
    """MB/s to build a mixture from a curated corpus of at least --mb MB on disk (built once, cached)."""
    from bench.mix_build import bench_mix as run_bench

    try:
        figures = run_bench(mb, workers=workers, exact=exact)
    except ConfigError as error:
        _fail(str(error))
    typer.echo(json.dumps(figures, indent=2))

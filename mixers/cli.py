"""The mixture commands (`curate mix`, and `curate inspect` of a mixture), wired by the CLI root
(api/main.py), which prints user errors (MixError is a ConfigError) as one line and exits 2;
warnings (weights normalised, a domain repeated) print as `warning: ...` lines while the build runs.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from mixers.errors import MixWarning
from mixers.output import is_mixture

__all__ = ["inspect_mixture", "is_mixture", "mix"]


def _print_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    typer.echo(f"{'warning' if issubclass(category, MixWarning) else category.__name__}: {message}", err=True)


def mix(
    spec: Annotated[Path, typer.Argument(help="mixture YAML (corpora, domains, budget, tokenizer, seed)")],
    tokens: Annotated[bool, typer.Option("--tokens", help="also write MIX/tokens/ (token shards)")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="refuse weights that do not sum to 1")] = False,
    out: Annotated[str | None, typer.Option(help="mixture folder (overrides `output:` in the spec)")] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=GLOB: a target set of texts scored beside the domains (eval.targets), repeatable"
        ),
    ] = None,
) -> None:
    """Sample curated corpora into MIX/part-*.parquet + MIX/manifest.json by domain weights and budget.

    Shares land within `share_tolerance` (default 1 point) of the request, or a warning says why not.
    MIX/eval/: the evaluation suite, the same for every mixture of these corpora, never sampled.
    """
    from mixers.sampler import mix_file
    from trainer.proxy import parse_pairs

    targets = parse_pairs(target or [], "--target")
    with warnings.catch_warnings():
        warnings.simplefilter("always", MixWarning)
        warnings.showwarning = _print_warning
        manifest = mix_file(
            spec, out, tokens, strict, echo=lambda line: typer.echo(line, err=True), targets=targets
        )
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

    report = run_report(mix, plots)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        render_mixture_report(report)

"""`curate models ...`: the model registry's commands, thin typer wrappers over filters.commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from curate.errors import ConfigError

models_app = typer.Typer(
    help="Train, list and evaluate the filter models (KenLM, fastText).", no_args_is_help=True
)

Home = Annotated[Path | None, typer.Option(help="model folder (default $CURATE_MODELS, $CURATE_HOME/models)")]


def _print(result: Any) -> None:
    typer.echo(json.dumps(result, indent=2, default=str))


def _run(function: Any, *args: Any, **kwargs: Any) -> None:
    _print(function(*args, **kwargs))


@models_app.command("list")
def models_list(home: Home = None) -> None:
    """Every trained model: name, kind, creation time, headline metrics, folder."""
    from filters.commands import models_list as run

    _run(run, home)


@models_app.command("show")
def models_show(name: str, home: Home = None) -> None:
    """The full JSON card of one model (data checksums, parameters, metrics)."""
    from filters.commands import models_show as run

    _run(run, name, home)


@models_app.command("build-kenlm")
def build_kenlm(
    install_packages: Annotated[bool, typer.Option(help="apt-get the build packages when root")] = True,
) -> None:
    """Find or build KenLM's lmplz and build_binary from the kenlm source distribution (idempotent)."""
    from filters.commands import build_kenlm as run

    _run(run, install_packages)


@models_app.command("train-lm")
def train_lm(
    name: str = "wiki-5gram",
    corpus: Annotated[str, typer.Option(help="reference (Wikipedia + books) or harmful")] = "reference",
    order: Annotated[int, typer.Option(min=2, max=6)] = 5,
    books_mb: Annotated[float, typer.Option(min=0)] = 20.0,
    memory: Annotated[str, typer.Option(help="lmplz memory, e.g. 1G")] = "1G",
    home: Home = None,
) -> None:
    """Train a KenLM n-gram model with lmplz on CCNet-normalised text; `--corpus harmful --name
    harmful-5gram` trains the model whose LOW perplexity flags harmful text."""
    from filters.commands import train_lm as run

    if corpus not in ("reference", "harmful"):
        raise ConfigError(f"--corpus {corpus!r}: use reference or harmful")
    _run(run, name, corpus, order, books_mb, memory, home)  # type: ignore[arg-type]


@models_app.command("calibrate-lm")
def calibrate_lm(name: str, sample: Path, low: float = 30.0, high: float = 60.0, home: Home = None) -> None:
    """Recompute a KenLM model's head/middle/tail cut-offs as perplexity percentiles of your own crawl."""
    from filters.commands import calibrate_lm as run

    _run(run, name, sample, low, high, home)


@models_app.command("train-toxicity")
def train_toxicity(name: str = "toxicity", home: Home = None) -> None:
    """Train the fastText toxicity classifier on ../shared/data/toxicity; held-out P/R/F1/AUC in its card."""
    from filters.commands import train_toxicity as run

    _run(run, name, home)


@models_app.command("train-quality")
def train_quality(
    name: str = "quality",
    lm: Annotated[str | None, typer.Option(help="KenLM model combined with the classifier")] = "wiki-5gram",
    no_lm: Annotated[bool, typer.Option("--no-lm", help="classifier alone")] = False,
    books_mb: Annotated[float, typer.Option(min=0)] = 10.0,
    home: Home = None,
) -> None:
    """Train the DCLM-style quality classifier; evaluate on the DCLM human labels beside the baselines."""
    from filters.commands import train_quality as run

    _run(run, name, None if no_lm else lm, books_mb, home)


@models_app.command("eval")
def models_eval(
    what: Annotated[str, typer.Argument(help="langid, toxicity, quality or all")] = "all",
    home: Home = None,
) -> None:
    """The figures BENCHMARKS.md records: lid.176 on UDHR2, toxicity held-out metrics, quality ROC-AUC."""
    from filters.commands import models_eval as run

    if what not in ("langid", "toxicity", "quality", "all"):
        raise ConfigError(f"{what!r}: use langid, toxicity, quality or all")
    _run(run, what, home=home)  # type: ignore[arg-type]

"""`curate models ...`: the model registry's commands, thin typer wrappers over filters.commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from curate.errors import ConfigError
from filters.model_registry import local_home

models_app = typer.Typer(
    help="Train, list and evaluate the filter models (KenLM, fastText).", no_args_is_help=True
)

Home = Annotated[
    Path | None,
    typer.Option(
        parser=local_home,
        metavar="<path|url>",
        help="model folder or object-store URL (default $CURATE_MODELS, $CURATE_HOME/models)",
    ),
]


def _print(result: Any) -> None:
    typer.echo(json.dumps(result, indent=2, default=str))


def _run(function: Any, *args: Any, **kwargs: Any) -> None:
    _print(function(*args, **kwargs))


@models_app.command("list")
def models_list(
    home: Home = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the models as JSON")] = False,
) -> None:
    """Every trained model: name, kind, creation time, headline metrics (and, with --json, its folder)."""
    from filters.commands import models_list as run

    rows = run(home)
    if as_json:
        _print(rows)
        return
    typer.echo(f"{'name':<24} {'kind':<18} {'created':<21} metrics")
    for row in rows:
        metrics = ", ".join(f"{k}={v}" for k, v in row["metrics"].items())
        typer.echo(f"{row['name']:<24} {row['kind']:<18} {row['created'] or '':<21} {metrics}".rstrip())


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


TextField = Annotated[
    str | None,
    typer.Option(help="JSONL/Parquet field holding the text (default: text, content, raw_content)"),
]
Lang = Annotated[
    str | None, typer.Option(help="language code of the data as the langid stage writes it (fr)")
]
TestPercent = Annotated[
    int, typer.Option(help="percent of the user's documents held out for the card's metrics")
]
Epoch = Annotated[
    int | None, typer.Option(help="fastText epochs (default: ceil(20000 / training examples), 5 to 25)")
]


@models_app.command("train-lm")
def train_lm(
    name: Annotated[
        str | None, typer.Option(help="model name (default wiki-5gram; required with --text)")
    ] = None,
    corpus: Annotated[
        str | None, typer.Option(help="bundled corpus: reference (Wikipedia + books, default) or harmful")
    ] = None,
    text: Annotated[
        str | None,
        typer.Option(help="GLOB of your own text (JSONL, Parquet, WARC/WET or plain text, .gz/.zst too)"),
    ] = None,
    lang: Lang = None,
    text_field: TextField = None,
    order: Annotated[int, typer.Option(min=2, max=6)] = 5,
    books_mb: Annotated[float, typer.Option(min=0)] = 20.0,
    memory: Annotated[str, typer.Option(help="lmplz memory, e.g. 1G")] = "1G",
    home: Home = None,
) -> None:
    """Train a KenLM n-gram model with lmplz on CCNet-normalised text. Bundled: `--corpus reference`
    (English Wikipedia + books), or `--corpus harmful --name harmful-5gram` for the model whose LOW
    perplexity flags harmful text. Your own: `--text 'GLOB' --name fr-5gram --lang fr` (every 20th document
    held out; the card records the files with their sha256, the split and the held-out perplexity)."""
    from filters.commands import train_lm as run

    if corpus not in (None, "reference", "harmful"):
        raise ConfigError(f"--corpus {corpus!r}: use reference or harmful")
    _run(run, name, corpus, order, books_mb, memory, home, text, lang, text_field)  # type: ignore[arg-type]


@models_app.command("calibrate-lm")
def calibrate_lm(name: str, sample: Path, low: float = 30.0, high: float = 60.0, home: Home = None) -> None:
    """Recompute a KenLM model's head/middle/tail cut-offs as perplexity percentiles of your own crawl."""
    from filters.commands import calibrate_lm as run

    _run(run, name, sample, low, high, home)


@models_app.command("train-toxicity")
def train_toxicity(
    name: str = "toxicity",
    labels: Annotated[
        Path | None,
        typer.Option(help="your labelled rows: CSV/TSV, JSONL or Parquet (default: bundled data)"),
    ] = None,
    text_column: Annotated[str, typer.Option(help="column of --labels holding the text")] = "text",
    label_column: Annotated[str, typer.Option(help="column of --labels holding the label")] = "label",
    positive_label: Annotated[
        list[str] | None,
        typer.Option(
            help="label value meaning toxic (repeatable); other values are not toxic. "
            "Without it the labels must be 1/true (toxic) and 0/false"
        ),
    ] = None,
    lang: Lang = None,
    test_percent: TestPercent = 20,
    epoch: Epoch = None,
    home: Home = None,
) -> None:
    """Train the fastText toxicity classifier; held-out P/R/F1/AUC in its card. Bundled: on
    ../shared/data/toxicity. Your own: `--labels FILE --text-column C --label-column L
    [--positive-label V]`."""
    from filters.commands import train_toxicity as run

    _run(run, name, home, labels, text_column, label_column, positive_label, lang, test_percent, epoch)


@models_app.command("train-quality")
def train_quality(
    name: str = "quality",
    positive: Annotated[
        str | None, typer.Option(help="GLOB of your good documents (JSONL, Parquet, WARC/WET, plain text)")
    ] = None,
    negative: Annotated[str | None, typer.Option(help="GLOB of your bad / random-web documents")] = None,
    text_field: TextField = None,
    lang: Lang = None,
    lm: Annotated[
        str | None,
        typer.Option(
            help="KenLM model combined with the classifier (bundled default wiki-5gram; "
            "with --positive none unless named)"
        ),
    ] = None,
    no_lm: Annotated[bool, typer.Option("--no-lm", help="classifier alone")] = False,
    books_mb: Annotated[float, typer.Option(min=0)] = 10.0,
    test_percent: TestPercent = 20,
    epoch: Epoch = None,
    home: Home = None,
) -> None:
    """Train the DCLM-style quality classifier. Bundled: evaluated on the DCLM human labels beside the
    baselines. Your own: `--positive 'GLOB' --negative 'GLOB' [--lang fr]`, evaluated on TEST_PERCENT% of
    your documents held out (precision/recall/F1/ROC-AUC printed and in the card)."""
    from filters.commands import train_quality as run

    own = positive is not None or negative is not None
    chosen = lm if own else (None if no_lm else lm or "wiki-5gram")
    _run(
        run,
        name,
        None if no_lm else chosen,
        books_mb,
        home,
        positive,
        negative,
        text_field,
        lang,
        test_percent,
        epoch,
    )


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

"""The `curate models ...` commands as plain functions, for the typer CLI to wrap one-to-one.

Each returns a JSON-ready dict (the CLI prints it, `--json` or as a table) and raises `ConfigError`
(one line, naming the fix) for user errors: missing shared data, unknown model, a sample with no
documents. Progress goes to `log` (stderr in the CLI), results to the return value.
"""

from __future__ import annotations

import re
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from curate.errors import ConfigError
from curate.textsources import shared_data_dir
from filters.kenlm_build import KenLMBuildError


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def models_list(home: Path | None = None) -> list[dict[str, Any]]:
    """`curate models list`: every trained model with its kind, creation time, headline metrics and
    folder, so a pipeline author can see what names a config may use."""
    from filters.model_registry import list_models, model_dir

    rows = []
    for card in list_models(home):
        rows.append(
            {
                "name": card.name,
                "kind": card.kind,
                "created": card.created,
                "dir": str(model_dir(card.name, home).resolve()),
                "metrics": _headline(card.kind, card.metrics),
            }
        )
    return rows


def _headline(kind: str, metrics: dict[str, Any]) -> dict[str, Any]:
    if kind == "kenlm":
        keys = ("held_out_ppl", "flag_auc_harmful_vs_clean")
        return {k: metrics[k] for k in keys if k in metrics}
    if kind == "fasttext-quality" and "dclm" in metrics:
        return _quality_headline(metrics["dclm"])
    if kind in ("fasttext-toxicity", "fasttext-quality") and "held_out" in metrics:
        # the toxicity recipe's, and a user-data model's figures on its held-out documents
        return {k: metrics["held_out"][k] for k in ("precision", "recall", "f1", "roc_auc")}
    return {}


def _quality_headline(dclm: dict[str, Any]) -> dict[str, Any]:
    """ROC-AUCs on the DCLM test half and on all labels; cards from before the dev/test split carry one
    flat set of figures, shown as they are."""
    if "test" not in dclm:
        return {k: v for k, v in dclm.items() if k.endswith("roc_auc")}
    return {
        f"{subset}_{k}": v
        for subset in ("test", "all")
        for k, v in dclm[subset].items()
        if k.endswith("roc_auc")
    }


def models_show(name: str, home: Path | None = None) -> dict[str, Any]:
    """`curate models show NAME`: the full JSON card of one model."""
    from filters.model_registry import find_model, models_home

    model = find_model(name, home)
    if model is None:
        raise ConfigError(
            f"no model {name!r} in {home or models_home()}; `curate models list` shows the names"
        )
    return asdict(model.card)


def build_kenlm(install_packages: bool = True) -> dict[str, str]:
    """`curate models build-kenlm`: find or build KenLM's lmplz and build_binary (idempotent; apt-get
    installs the build packages when running as root). `make setup` can call this once."""
    from filters.kenlm_build import ensure_tools

    try:
        tools = ensure_tools(install_packages=install_packages, log=_stderr)
    except KenLMBuildError as error:
        raise ConfigError(str(error)) from None
    return {name: str(path) for name, path in tools.items()}


def train_lm(
    name: str | None = None,
    corpus: Literal["reference", "harmful"] | None = None,
    order: int = 5,
    books_mb: float = 20.0,
    memory: str = "1G",
    home: Path | None = None,
    text: str | None = None,
    lang: str | None = None,
    text_field: str | None = None,
) -> dict[str, Any]:
    """`curate models train-lm [--name wiki-5gram] [--corpus reference|harmful] [--order 5] [--books-mb 20]`:
    train a KenLM model (builds lmplz first if needed). `reference` = Wikipedia (gensim + WikiText-2) and up
    to BOOKS_MB of Gutenberg books, for the `perplexity` stage; `harmful` = 4chan + toxic tweets + hateful
    forum sentences, for the `harmful_ppl` stage (use `--name harmful-5gram`). With `--text GLOB --name N
    --lang L` the model is trained on the user's own documents in language L instead. Returns the card."""
    from filters.perplexity_recipe import LmSettings
    from filters.perplexity_recipe import train_lm as train
    from filters.user_recipe import train_user_lm

    if order < 2 or order > 6:
        raise ConfigError(f"--order {order}: KenLM here is built for orders 2..6")
    try:
        if text is None:
            _only_with("--text", lang=lang, text_field=text_field)
            model = train(
                name or "wiki-5gram",
                corpus or "reference",
                order,
                books_mb,
                memory=memory,
                home=home,
                log=_stderr,
            )
        else:
            if corpus is not None:
                raise ConfigError("--corpus picks a bundled corpus; leave it out with --text")
            settings = LmSettings(order=order, memory=memory)
            model = train_user_lm(
                _model_name(_required("--text", name=name), home),
                text,
                _language(_required("--text", lang=lang)),
                text_field,
                settings,
                home,
                _stderr,
            )
    except (FileNotFoundError, KenLMBuildError) as error:
        raise ConfigError(str(error)) from None
    return asdict(model.card)


LANGUAGE = re.compile(r"[a-z]{2,3}")


def _language(lang: str | None) -> str | None:
    """A language code as the langid stage writes it (lid.176: `en`, `fr`, `ceb`), or None."""
    if lang is not None and not LANGUAGE.fullmatch(lang):
        raise ConfigError(f"--lang {lang!r}: use the code the langid stage writes, such as en, fr or de")
    return lang


def _required(mode: str, **options: Any) -> Any:
    """The one option `mode` needs, or a ConfigError naming it."""
    ((key, value),) = options.items()
    if value is None:
        raise ConfigError(f"{mode} needs --{key.replace('_', '-')}")
    return value


def _only_with(mode: str, **options: Any) -> None:
    """Options that only mean something with `mode` (the user's own data) are refused without it."""
    given = [f"--{key.replace('_', '-')}" for key, value in options.items() if value not in (None, [], False)]
    if given:
        them = "it" if len(given) == 1 else "them"
        raise ConfigError(f"{', '.join(given)}: only used with {mode}; add {mode} or leave {them} out")


def calibrate_lm(
    name: str, sample: Path, low: float = 30.0, high: float = 60.0, home: Path | None = None
) -> dict[str, Any]:
    """`curate models calibrate-lm NAME SAMPLE [--low 30] [--high 60]`: recompute a KenLM model's
    head/middle/tail cut-offs as percentiles of perplexity on SAMPLE (a shard or folder of shards of
    one's own crawl, any readable format); CCNet computes them on the crawl itself."""
    from filters.perplexity_recipe import calibrate_lm as calibrate

    if not sample.exists():
        raise ConfigError(f"sample {sample} does not exist; pass a shard file or a folder of shards")
    if not 0 < low < high < 100:
        raise ConfigError(f"percentiles {low}/{high} must satisfy 0 < low < high < 100")
    try:
        cutoffs = calibrate(name, sample, (low, high), home=home)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return {"name": name, "percentiles": [low, high], "cutoffs": cutoffs}


def train_toxicity(
    name: str = "toxicity",
    home: Path | None = None,
    labels: Path | None = None,
    text_column: str = "text",
    label_column: str = "label",
    positive_labels: list[str] | None = None,
    lang: str | None = None,
    test_percent: int = 20,
    epoch: int | None = None,
) -> dict[str, Any]:
    """`curate models train-toxicity [--name toxicity]`: train the fastText toxicity classifier on
    ../shared/data/toxicity and store held-out precision/recall/F1/ROC-AUC in its card. With `--labels
    FILE` (CSV/TSV, JSONL or Parquet) it trains on the user's labelled rows instead: `--text-column`,
    `--label-column`, and `--positive-label` for the values that mean toxic (else 1/true vs 0/false)."""
    from filters.toxicity_recipe import train_toxicity as train
    from filters.user_recipe import train_user_toxicity

    if labels is None:
        _only_with("--labels", positive_label=positive_labels, lang=lang, epoch=epoch)
        try:
            model = train(name, home=home, log=_stderr)
        except FileNotFoundError as error:
            raise ConfigError(str(error)) from None
    else:
        model = train_user_toxicity(
            _model_name(name, home),
            labels,
            text_column,
            label_column,
            positive_labels or None,
            _language(lang),
            _test_percent(test_percent),
            _epochs(epoch),
            home,
            _stderr,
        )
    return asdict(model.card)


def train_quality(
    name: str = "quality",
    lm: str | None = "wiki-5gram",
    books_mb: float = 10.0,
    home: Path | None = None,
    positive: str | None = None,
    negative: str | None = None,
    text_field: str | None = None,
    lang: str | None = None,
    test_percent: int = 20,
    epoch: int | None = None,
) -> dict[str, Any]:
    """`curate models train-quality [--name quality] [--lm wiki-5gram|--no-lm] [--books-mb 10]`: train the
    DCLM-style quality classifier and evaluate it on the DCLM human labels next to the length and KenLM
    baselines (the KenLM baseline and the ensemble need the LM named by --lm to be trained first). With
    `--positive GLOB --negative GLOB` it trains on the user's own documents instead (any language; `--lm`
    is then off unless named) and evaluates on TEST_PERCENT% of them held out."""
    from filters.quality_recipe import train_quality as train
    from filters.user_recipe import train_user_quality

    if positive is None and negative is None:
        _only_with("--positive", text_field=text_field, lang=lang, epoch=epoch)
        try:
            model = train(name, lm, books_mb, home=home, log=_stderr)
        except FileNotFoundError as error:
            raise ConfigError(str(error)) from None
    else:
        model = train_user_quality(
            _model_name(name, home),
            _required("--negative", positive=positive),
            _required("--positive", negative=negative),
            text_field,
            _language(lang),
            lm,
            _test_percent(test_percent),
            _epochs(epoch),
            home,
            _stderr,
        )
    return asdict(model.card)


def _model_name(name: str, home: Path | None) -> str:
    """Refuse a name that is no plain folder name before any data is read (model_registry.MODEL_NAME)."""
    from filters.model_registry import model_dir

    model_dir(name, home)
    return name


def _test_percent(percent: int) -> int:
    if not 5 <= percent <= 50:
        raise ConfigError(f"--test-percent {percent}: hold out between 5 and 50 percent of the documents")
    return percent


def _epochs(epoch: int | None) -> dict[str, Any] | None:
    """fastText settings over fasttext_training.DEFAULT_HYPERPARAMS (None keeps them)."""
    if epoch is None:
        return None
    if not 1 <= epoch <= 100:
        raise ConfigError(f"--epoch {epoch}: use 1 to 100 passes over the training data")
    return {"epoch": epoch}


def models_eval(
    what: Literal["langid", "toxicity", "quality", "all"] = "all",
    toxicity_model: str = "toxicity",
    quality_model: str = "quality",
    lm: str | None = "wiki-5gram",
    home: Path | None = None,
) -> dict[str, Any]:
    """`curate models eval [langid|toxicity|quality|all]`: the figures BENCHMARKS.md records: lid.176
    accuracy on UDHR2, the toxicity card's held-out metrics, and quality ROC-AUC on the DCLM human labels
    with its baselines (recomputed now with the named models) on the dev half recipes were chosen on, the
    test half that is reported, and all of them."""
    shared = shared_data_dir()
    if shared is None:
        raise ConfigError("evaluation needs ../shared/data (or CURATE_SHARED_DATA pointing at it)")
    out: dict[str, Any] = {}
    if what in ("langid", "all"):
        from filters.langid_recipe import evaluate_udhr

        out["langid_udhr"] = evaluate_udhr(shared / "langid" / "udhr2.zip")
    if what in ("toxicity", "all"):
        from filters.model_registry import require_model
        from filters.toxicity import KIND

        out["toxicity"] = require_model(toxicity_model, KIND, home).card.metrics
    if what in ("quality", "all"):
        out["quality_dclm"] = _quality_eval(shared, quality_model, lm, home)
    return out


def _quality_eval(shared: Path, quality_model: str, lm: str | None, home: Path | None) -> dict[str, Any]:
    from filters.fasttext_scoring import load_classifier
    from filters.kenlm_lm import load_kenlm
    from filters.model_registry import require_model
    from filters.perplexity import KIND as KENLM_KIND
    from filters.quality import KIND
    from filters.quality_recipe import evaluate_dclm

    model = require_model(quality_model, KIND, home)
    language_model = load_kenlm(str(require_model(lm, KENLM_KIND, home).path("model"))) if lm else None
    stats = model.card.extra.get("ensemble", {}).get(lm) if lm else None
    return evaluate_dclm(load_classifier(str(model.path("model"))), shared, language_model, stats)

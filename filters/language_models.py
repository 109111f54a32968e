"""A model per language: the `perplexity`, `harmful_ppl` and `quality` stages' `models: {en: NAME, fr: NAME}`.

Why: a KenLM model or a quality classifier scores only the language it was trained on; an English model
gives French text a meaningless (high) perplexity. With `models`, each document is scored by the model of
its language as the langid stage wrote it in the `lang` column (so langid must run first). A document of
a language without a model keeps a null score and is counted as `<stage>:no_model_for_<lang>` in the
stats (`und` when it has no language), never dropped for it, and the run says so on stderr at start
(`language_warning`). A model whose card records a `lang` (models trained with `--lang`) must be listed
under that language. Without `models` the stages keep their single default model for every document.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import TypeVar

import numpy as np
import pyarrow as pa

from curate.errors import ConfigError
from filters.model_registry import Model, require_model

S = TypeVar("S")  # a stage's scorer for one language

LANG_COLUMN = "lang"
NO_LANGUAGE = "und"
EVERY_LANGUAGE = "*"
"""The key of a stage's single model when it has no `models`: it scores every document."""
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")


def check_language_models(models: dict[str, str], kind: str, home) -> dict[str, Model]:
    """Every listed model trained, of the stage's kind, and (when its card says) of the listed language."""
    if not models:
        raise ValueError("`models` is empty; map language codes to model names, e.g. {en: wiki-5gram}")
    resolved = {}
    for lang, name in models.items():
        if not LANGUAGE_CODE.fullmatch(lang):
            raise ValueError(
                f"models: {lang!r} is not a language code as the langid stage writes it (en, fr)"
            )
        model = require_model(name, kind, home)
        trained_on = model.card.params.get("lang")
        if trained_on and trained_on != lang:
            raise ValueError(
                f"models.{lang}: {name!r} was trained on {trained_on!r} text (its card's lang); "
                f"list it under {trained_on} or name a {lang} model"
            )
        resolved[lang] = model
    return resolved


def language_rows(batch: pa.Table, stage: str, by_language: bool) -> dict[str, np.ndarray]:
    """Row indices of each language of the batch's `lang` column (null as `und`), in first-seen order;
    without `by_language`, every row under EVERY_LANGUAGE."""
    if not by_language:
        return {EVERY_LANGUAGE: np.arange(batch.num_rows)}
    if LANG_COLUMN not in batch.column_names:
        raise ConfigError(
            f"{stage}: `models` picks a model by the `{LANG_COLUMN}` column, which the documents lack; "
            f"put the langid stage before {stage}"
        )
    groups: dict[str, list[int]] = {}
    for row, lang in enumerate(batch.column(LANG_COLUMN).to_pylist()):
        groups.setdefault(lang or NO_LANGUAGE, []).append(row)
    return {lang: np.asarray(rows, dtype=np.int64) for lang, rows in groups.items()}


def scorer_groups(
    batch: pa.Table, stage: str, scorers: Mapping[str, S], by_language: bool, stats: Counter
) -> Iterator[tuple[S, np.ndarray, pa.ChunkedArray]]:
    """(scorer, rows, their texts) per language of the batch; a language without a scorer is counted as
    `<stage>:no_model_for_<lang>` and its rows are left for the caller's null."""
    text = batch.column("text")
    for lang, rows in language_rows(batch, stage, by_language).items():
        scorer = scorers.get(lang)
        if scorer is None:
            stats[f"{stage}:no_model_for_{lang}"] += len(rows)
            continue
        yield scorer, rows, text.take(rows) if by_language else text


def language_warning(stage: str, models: dict[str, str], column: str) -> str:
    """The run's start-up line for a per-language stage: which models, and what happens to the rest."""
    listed = ", ".join(f"{lang}={name}" for lang, name in models.items())
    return (
        f"{stage}: one model per language ({listed}) chosen by the `{LANG_COLUMN}` column; documents in "
        f"any other language get a null {column}, counted as {stage}:no_model_for_<lang>"
    )

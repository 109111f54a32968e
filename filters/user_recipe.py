"""Models trained on a user's own data, in any language (`curate models train-quality --positive/--negative`,
`train-lm --text --lang`, `train-toxicity --labels`).

The bundled recipes (filters.quality_recipe, perplexity_recipe, toxicity_recipe) train English models on
../shared/data; these train the same kinds of model, with the same training code and scorers, on what the
user points at (read by filters.user_data), so a stage uses them exactly as it uses the bundled ones.

- quality: positive and negative documents cut into ~CHUNK_WORDS-word chunks (the bundled recipe's
  chunker, so neither class wins by length), a fastText classifier with fasttext_training's defaults (no
  skip-gram pretraining: that needs unlabelled text the user did not give). Optionally `lm` names a
  trained KenLM model to ensemble with, standardised on all the user's documents (no labels used).
- toxicity: one labelled row is one example; `--positive-label` says which label values are toxic.
- lm: every HELD_OUT_EVERY-th document is held out; the bucket cut-offs are its perplexity percentiles
  (re-compute them on your crawl with `curate models calibrate-lm`).
Classifiers hold out `test_percent` of the documents (by a hash of the document, so a document's chunks
stay on one side) and the card records precision/recall/F1/accuracy/ROC-AUC on them. Every card records
the files (path, bytes, sha256, documents), the document counts, the split and the parameters, and a
`lang` when given (the per-language model selection of the `perplexity` and `quality` stages checks it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from curate.errors import ConfigError
from filters import corpora
from filters.fasttext_scoring import load_classifier
from filters.fasttext_training import Example, evaluate, split, train_classifier
from filters.kenlm_lm import load_kenlm
from filters.model_registry import Model, ModelCard, ModelWriter, require_model
from filters.perplexity import KIND as KENLM_KIND
from filters.perplexity_recipe import LmData, LmSettings, register_lm, split_held_out
from filters.quality import KIND as QUALITY_KIND
from filters.quality import MAX_CHARS as QUALITY_MAX_CHARS
from filters.quality_recipe import CHUNK_WORDS, ensemble_stats
from filters.toxicity import KIND as TOXICITY_KIND
from filters.toxicity import MAX_CHARS as TOXICITY_MAX_CHARS
from filters.user_data import Documents, read_documents, read_labels, require_documents

MIN_CLASS_DOCUMENTS = 20
"""Documents (quality) or rows (toxicity) each class needs: fewer cannot fill a training and a held-out
side with both classes."""
MIN_LM_DOCUMENTS = 20
DEFAULT_TEST_PERCENT = 20
EPOCH_EXAMPLES = 20_000
"""Default fastText epochs are ceil(EPOCH_EXAMPLES / training examples), between 5 and 25: fastText's 5
underfit a few thousand examples (the 1,442 training chunks of the DCLM labels, 80% of 499 documents,
failed the training-set sanity check at 5 epochs; at 14 the held-out ROC-AUC was 0.75, at 25 0.77, and on
another 80/20 split 0.81 at 15), while large sets keep the bundled 5."""
SPLIT = "by blake2b hash of each document's id (file sha256 prefix:offset, or row/N of a labels file)"


# ------------------------------------------------------------------------------------------ quality


def train_user_quality(
    name: str,
    positive: str,
    negative: str,
    text_field: str | None = None,
    lang: str | None = None,
    lm: str | None = None,
    test_percent: int = DEFAULT_TEST_PERCENT,
    hyperparams: dict[str, Any] | None = None,
    home: Path | None = None,
    log=print,
) -> Model:
    """A quality classifier of the `positive` documents (label 1) against the `negative` ones (0)."""
    found = {
        "--positive": read_documents(positive, "--positive", text_field),
        "--negative": read_documents(negative, "--negative", text_field),
    }
    examples = [
        (chunk, int(option == "--positive"), source)
        for option, documents in found.items()
        for source, text in documents.docs
        for chunk in corpora.chunk_lines(text, CHUNK_WORDS)
    ]
    for option, label in (("--positive", 1), ("--negative", 0)):
        _require_class_documents(examples, label, option, f"with at least {CHUNK_WORDS // 4} words")
    language_model = _ensemble_lm(lm, lang, home)
    params = {
        "source": "user",
        "positive": positive,
        "negative": negative,
        "text_field": text_field,
        "lang": lang,
        "lm": lm,
        "chunk_words": CHUNK_WORDS,
    }
    counts = {f"{o.strip('-')}_documents": len(d.docs) for o, d in found.items()}

    def ensemble(classifier) -> dict[str, Any]:
        if language_model is None:
            return {}
        texts = [text for documents in found.values() for _, text in documents.docs]
        return {"ensemble": {lm: ensemble_stats(classifier, language_model, texts)}}

    classifier = UserClassifier(QUALITY_KIND, QUALITY_MAX_CHARS, test_percent, hyperparams)
    return classifier.train(name, examples, params, _files(found.values()), counts, ensemble, home, log)


def _ensemble_lm(lm: str | None, lang: str | None, home: Path | None):
    """The KenLM model to ensemble with, loaded; its card's language must match `lang` when both say one."""
    if lm is None:
        return None
    model = require_model(lm, KENLM_KIND, home)
    lm_lang = model.card.params.get("lang")
    if lang and lm_lang and lm_lang != lang:
        raise ConfigError(f"--lm {lm} is a {lm_lang!r} model and --lang is {lang!r}; name a {lang} LM")
    return load_kenlm(str(model.path("model")))


# ----------------------------------------------------------------------------------------- toxicity


def train_user_toxicity(
    name: str,
    labels: Path,
    text_column: str,
    label_column: str,
    positive_labels: list[str] | None = None,
    lang: str | None = None,
    test_percent: int = DEFAULT_TEST_PERCENT,
    hyperparams: dict[str, Any] | None = None,
    home: Path | None = None,
    log=print,
) -> Model:
    """A toxicity classifier from a labels table: one row, one example (see filters.user_data.read_labels
    for the label rule)."""
    table = read_labels(labels, text_column, label_column, positive_labels)
    examples = [
        (text, label, f"row/{index}")
        for index, (text, label) in enumerate(zip(table.texts, table.labels, strict=True))
    ]
    for option, label in (("--labels (toxic rows)", 1), ("--labels (non-toxic rows)", 0)):
        _require_class_documents(examples, label, option, "with text")
    params = {
        "source": "user",
        "labels": str(labels),
        "text_column": text_column,
        "label_column": label_column,
        "positive_labels": positive_labels,
        "label_rule": table.rule,
        "label_values": table.values,
        "lang": lang,
    }
    counts = {"rows": len(examples), "toxic_rows": sum(table.labels)}
    classifier = UserClassifier(TOXICITY_KIND, TOXICITY_MAX_CHARS, test_percent, hyperparams)
    return classifier.train(name, examples, params, [table.file], counts, lambda _: {}, home, log)


# ---------------------------------------------------------------------------------------- language model


def train_user_lm(
    name: str,
    text: str,
    lang: str,
    text_field: str | None = None,
    settings: LmSettings | None = None,
    home: Path | None = None,
    log=print,
) -> Model:
    """A KenLM model of the user's text in language `lang`, for the `perplexity` stage."""
    found = read_documents(text, "--text", text_field)
    require_documents(found, "--text", MIN_LM_DOCUMENTS)
    train, held = split_held_out(found.docs)
    data = LmData(train, held, found.files, (f"held-out documents of --text {text}", [t for _, t in held]))
    params = {"corpus": "user", "text": text, "text_field": text_field, "lang": lang}
    return register_lm(name, data, params, settings or LmSettings(), home, log)


# ------------------------------------------------------------------------------------------- shared


def _files(groups: Iterable[Documents]) -> list[dict[str, Any]]:
    return [entry for documents in groups for entry in documents.files]


def _require_class_documents(examples: list[Example], label: int, option: str, what: str) -> None:
    documents = len({group for _, y, group in examples if y == label})
    if documents < MIN_CLASS_DOCUMENTS:
        raise ConfigError(
            f"{option} gave {documents} documents {what}; training needs at least {MIN_CLASS_DOCUMENTS} "
            "of each class, add more"
        )


def default_epochs(examples: int) -> int:
    """See EPOCH_EXAMPLES."""
    return max(5, min(25, math.ceil(EPOCH_EXAMPLES / max(examples, 1))))


class UserClassifier:
    """Train, evaluate on the held-out documents and register a fastText classifier of one kind."""

    def __init__(
        self, kind: str, max_chars: int, test_percent: int, hyperparams: dict[str, Any] | None
    ) -> None:
        self.kind = kind
        self.max_chars = max_chars
        self.test_percent = test_percent
        self.hyperparams = hyperparams

    def split(self, examples: list[Example]) -> tuple[list[Example], list[Example]]:
        """Train/test by document; both sides must hold both classes, or the figures would mean nothing."""
        train, test = split(examples, self.test_percent)
        for side, rows in (("held-out", test), ("training", train)):
            classes = {label for _, label, _ in rows}
            if classes != {0, 1}:
                raise ConfigError(
                    f"the {side} split ({self.test_percent}% of documents held out) has no "
                    f"{'positive' if 1 not in classes else 'negative'} example; add documents or "
                    "change --test-percent"
                )
        return train, test

    def train(
        self,
        name: str,
        examples: list[Example],
        params: dict[str, Any],
        files: list[dict[str, Any]],
        counts: dict[str, int],
        extra_for,
        home: Path | None,
        log,
    ) -> Model:
        """`extra_for(classifier)` adds what the stage loads beside the model (the quality ensemble)."""
        train, test = self.split(examples)
        hyperparams = {"epoch": default_epochs(len(train)), **(self.hyperparams or {})}
        log(f"training {name!r} on {len(train):,} examples ({sum(e[1] for e in train):,} positive)")
        with ModelWriter(name, home) as writer:
            try:
                facts = train_classifier(
                    train, writer.directory / "model.bin", self.max_chars, hyperparams, min_examples=1
                )
            except (ValueError, RuntimeError) as error:
                raise ConfigError(
                    f"training {name!r} failed: {error}; more documents or a larger --epoch may help"
                ) from None
            classifier = load_classifier(str(writer.directory / "model.bin"))
            held = evaluate(classifier, test, self.max_chars)
            metrics = {
                "held_out": held,
                **counts,
                "train_documents": len({e[2] for e in train}),
                "held_out_documents": len({e[2] for e in test}),
                **{k: v for k, v in facts.items() if k != "hyperparams"},
            }
            card = ModelCard(
                name=name,
                kind=self.kind,
                files={"model": "model.bin"},
                params={
                    **params,
                    "max_chars": self.max_chars,
                    "test_percent": self.test_percent,
                    "split": SPLIT,
                    **facts["hyperparams"],
                },
                data=files,
                metrics=metrics,
                extra=extra_for(classifier),
            )
            load_classifier.cache_clear()
            registered = writer.commit(card)
        log(
            f"{name}: held-out precision {held['precision']}, recall {held['recall']}, F1 {held['f1']}, "
            f"ROC-AUC {held['roc_auc']}"
        )
        return registered

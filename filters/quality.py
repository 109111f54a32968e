"""quality: a DCLM-style fastText classifier of reference-quality text against random web text.

The stage writes `quality` = P(high quality) from the classifier alone when `ppl_model` is null. By
default (`ppl_model: card`: the LM the model was trained with, if any) it writes the ensemble
sigmoid(z(logit P) - z(log ppl)): the classifier's log-odds and the reference LM's log perplexity, each
standardised by its mean and deviation on the reference web sample (stored in the card at training time,
no labels involved). The two signals disagree usefully: on the DCLM labels the ensemble beats either
alone and both baselines (see the card's `dclm` metrics). `min_quality` drops as `quality:below_min`.
`models: {en: NAME, fr: NAME}` scores each document with the model of its language (`lang`, from the
langid stage), each ensembled with the LM its own card names; see filters.language_models.

How the classifier is trained (data, measured choices) and evaluated on the DCLM human labels:
`filters.quality_recipe` (this module only scores, so a worker never imports the training code).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from curate.stages.base import Resources, Stage, StageParams, StageResult, set_columns
from filters.fasttext_scoring import load_classifier, score_texts
from filters.kenlm_lm import load_kenlm, perplexities
from filters.language_models import EVERY_LANGUAGE, check_language_models, language_warning, scorer_groups
from filters.lm_normalize_kernel import warm_up
from filters.model_registry import Model, ModelFolderParams, ModelsDir, pinned_home, require_model
from filters.perplexity import KIND as KENLM_KIND

KIND = "fasttext-quality"
MAX_CHARS = 20_000
EPSILON = 1e-4


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


def ensemble_score(p: np.ndarray, ppl: np.ndarray, stats: dict[str, float]) -> np.ndarray:
    """sigmoid(z(logit p) - z(log ppl)) with the reference sample's means and deviations."""
    z_clf = (logit(p) - stats["logit_mean"]) / stats["logit_std"]
    finite = np.isfinite(ppl)
    log_ppl = np.where(finite, np.log(np.where(finite, ppl, 1.0)), stats["log_ppl_mean"])  # no text: neutral
    z_ppl = (log_ppl - stats["log_ppl_mean"]) / stats["log_ppl_std"]
    return 1.0 / (1.0 + np.exp(-(z_clf - z_ppl)))


class QualityParams(ModelFolderParams, StageParams):
    model: str = Field(default="quality", description="model name in the registry")
    models: dict[str, str] | None = Field(
        default=None,
        description="a model per language of the `lang` column (langid first), e.g. {en: quality, "
        "fr: quality-fr}, each with the LM its card names; other languages get a null quality, counted as "
        "quality:no_model_for_<lang>",
        exclude_if=lambda models: models is None,  # unset, it leaves the config hash of older configs as is
    )
    models_dir: ModelsDir = None
    ppl_model: str | None = Field(
        default="card",
        description="KenLM model to ensemble with; `card` = the one the model was trained with, if any; "
        "null = the classifier alone",
    )
    min_quality: float | None = Field(default=None, ge=0.0, le=1.0, description="drop below this")

    @model_validator(mode="after")
    def _models_exist(self) -> QualityParams:
        self.models_dir = pinned_home(self.models_dir)
        if self.models is not None:
            return self._language_models_exist()
        model = require_model(self.model, KIND, self.models_dir)
        if self.ppl_model == "card":
            self.ppl_model = card_lm(model)
        if self.ppl_model is not None:
            require_model(self.ppl_model, KENLM_KIND, self.models_dir)
            if self.ppl_model not in model.card.extra.get("ensemble", {}):
                raise ValueError(
                    f"quality model {self.model!r} has no ensemble statistics for {self.ppl_model!r}; "
                    f"re-train it: `curate models train-quality --name {self.model} --lm {self.ppl_model}`"
                )
        return self

    def _language_models_exist(self) -> QualityParams:
        """With `models`, each classifier ensembles with the LM its own card names (`ppl_model: card`) or
        none (`ppl_model: null`): one LM name could not fit models of several languages."""
        if "model" in self.model_fields_set:
            raise ValueError("give `model` (one for every document) or `models` (one per language), not both")
        if self.ppl_model not in ("card", None):
            raise ValueError(
                "with `models`, each quality model uses the LM its card names; set ppl_model to card or null"
            )
        for model in check_language_models(self.models or {}, KIND, self.models_dir).values():
            lm = card_lm(model) if self.ppl_model == "card" else None
            if lm is not None:
                require_model(lm, KENLM_KIND, self.models_dir)
        return self

    def scorers_by_language(self) -> dict[str, tuple[str, str | None]]:
        """(quality model, LM or None) by language; the single `model` under EVERY_LANGUAGE."""
        if self.models is None:
            return {EVERY_LANGUAGE: (self.model, self.ppl_model)}
        home = self.models_dir
        return {
            lang: (name, card_lm(require_model(name, KIND, home)) if self.ppl_model == "card" else None)
            for lang, name in self.models.items()
        }

    def model_names(self) -> list[str]:
        pairs = self.scorers_by_language().values()
        return list(dict.fromkeys(name for pair in pairs for name in pair if name is not None))

    def run_warnings(self) -> list[str]:
        """Said when a run starts and kept in its manifest: with `models`, which documents get no score."""
        return [] if self.models is None else [language_warning("quality", self.models, "quality")]


def card_lm(model: Model) -> str | None:
    """The LM a quality model was trained to ensemble with, if its card has the statistics for it."""
    trained_with = model.card.params.get("lm")
    return trained_with if trained_with in model.card.extra.get("ensemble", {}) else None


@dataclass(frozen=True)
class QualityScorer:
    """One language's classifier, with the LM and standardisation constants of its ensemble if any."""

    classifier: Any
    lm: Any | None
    stats: dict[str, float] | None

    def score(self, text: pa.Array | pa.ChunkedArray) -> np.ndarray:
        score = score_texts(self.classifier, text, MAX_CHARS)
        if self.lm is not None:
            score = ensemble_score(score, perplexities(self.lm, text), self.stats)
        return score


class Quality(Stage):
    name = "quality"
    Params = QualityParams
    params: QualityParams
    drops = {"quality:below_min": "`quality` below `min_quality` (when set)"}
    resources = Resources(cpus=1.0, memory_mb=1024)

    def output_fields(self) -> list[pa.Field]:
        return [pa.field("quality", pa.float32())]

    def setup(self) -> None:
        warm_up()  # the compiled text kernels load (or compile) once per worker, not in its first batch
        self._scorers = {
            lang: self._scorer(name, lm) for lang, (name, lm) in self.params.scorers_by_language().items()
        }

    def _scorer(self, name: str, lm_name: str | None) -> QualityScorer:
        model = require_model(name, KIND, self.params.models_dir)
        classifier = load_classifier(str(model.path("model")))
        if lm_name is None:
            return QualityScorer(classifier, None, None)
        lm = require_model(lm_name, KENLM_KIND, self.params.models_dir)
        return QualityScorer(
            classifier, load_kenlm(str(lm.path("model"))), model.card.extra["ensemble"][lm_name]
        )

    def process(self, batch: pa.Table) -> StageResult:
        score = np.full(batch.num_rows, np.nan)
        stats: Counter = Counter()
        by_language = self.params.models is not None
        for scorer, rows, texts in scorer_groups(batch, self.name, self._scorers, by_language, stats):
            score[rows] = scorer.score(texts)
        reasons = pa.nulls(batch.num_rows, pa.string())
        if self.params.min_quality is not None:
            low = score < self.params.min_quality  # NaN (no model for the language) is never low
            reasons = pa.array(np.where(low, "quality:below_min", None), pa.string())
            stats["quality:below_min"] = int(low.sum())
        quality = pa.array(score.astype(np.float32), from_pandas=True)  # NaN (no model) -> null
        table = set_columns(batch, {"quality": quality})
        return StageResult(table, reasons, stats)

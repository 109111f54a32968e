"""quality: a DCLM-style fastText classifier of reference-quality text against random web text.

The stage writes `quality` = P(high quality) from the classifier alone when `ppl_model` is null. By
default (`ppl_model: card`: the LM the model was trained with, if any) it writes the ensemble
sigmoid(z(logit P) - z(log ppl)): the classifier's log-odds and the reference LM's log perplexity, each
standardised by its mean and deviation on the reference web sample (stored in the card at training time,
no labels involved). The two signals disagree usefully: on the DCLM labels the ensemble beats either
alone and both baselines (see the card's `dclm` metrics). `min_quality` drops as `quality:below_min`.

How the classifier is trained (data, measured choices) and evaluated on the DCLM human labels:
`filters.quality_recipe` (this module only scores, so a worker never imports the training code).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from curate.paths import PathValue
from curate.stages.base import Resources, Stage, StageParams, StageResult, set_columns
from filters.fasttext_scoring import load_classifier, score_texts
from filters.kenlm_lm import load_kenlm, perplexities
from filters.model_registry import ModelFolderParams, find_model, pinned_home, require_model
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
    models_dir: PathValue | None = Field(
        default=None,
        description="registry folder (default: CURATE_MODELS, else .cache/models); pinned absolute",
    )
    ppl_model: str | None = Field(
        default="card",
        description="KenLM model to ensemble with; `card` = the one the model was trained with, if any; "
        "null = the classifier alone",
    )
    min_quality: float | None = Field(default=None, ge=0.0, le=1.0, description="drop below this")

    @model_validator(mode="after")
    def _models_exist(self) -> QualityParams:
        self.models_dir = pinned_home(self.models_dir)
        model = require_model(self.model, KIND, self.models_dir)
        if self.ppl_model == "card":
            trained_with = model.card.params.get("lm")
            self.ppl_model = trained_with if trained_with in model.card.extra.get("ensemble", {}) else None
        if self.ppl_model is not None:
            require_model(self.ppl_model, KENLM_KIND, self.models_dir)
            if self.ppl_model not in model.card.extra.get("ensemble", {}):
                raise ValueError(
                    f"quality model {self.model!r} has no ensemble statistics for {self.ppl_model!r}; "
                    f"re-train it: `curate models train-quality --name {self.model} --lm {self.ppl_model}`"
                )
        return self

    def model_names(self) -> list[str]:
        return [self.model] + ([self.ppl_model] if self.ppl_model is not None else [])


class Quality(Stage):
    name = "quality"
    Params = QualityParams
    params: QualityParams
    resources = Resources(cpus=1.0, memory_mb=1024)

    def output_fields(self) -> list[pa.Field]:
        return [pa.field("quality", pa.float32())]

    def setup(self) -> None:
        model = require_model(self.params.model, KIND, self.params.models_dir)
        self._classifier = load_classifier(str(model.path("model")))
        self._lm = self._stats = None
        if self.params.ppl_model is not None:
            lm = find_model(self.params.ppl_model, self.params.models_dir)
            self._lm = load_kenlm(str(lm.path("model")))
            self._stats = model.card.extra["ensemble"][self.params.ppl_model]

    def process(self, batch: pa.Table) -> StageResult:
        text = batch.column("text")
        score = score_texts(self._classifier, text, MAX_CHARS)
        if self._lm is not None:
            score = ensemble_score(score, perplexities(self._lm, text), self._stats)
        stats: Counter = Counter()
        reasons = pa.nulls(batch.num_rows, pa.string())
        if self.params.min_quality is not None:
            low = score < self.params.min_quality
            reasons = pa.array(np.where(low, "quality:below_min", None), pa.string())
            stats["quality:below_min"] = int(low.sum())
        table = set_columns(batch, {"quality": pa.array(score.astype(np.float32))})
        return StageResult(table, reasons, stats)

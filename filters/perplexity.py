"""Perplexity under a KenLM 5-gram: CCNet's head/middle/tail buckets, and the inverse "harmful LM" use.

Two stages share one implementation:

- `perplexity` scores documents with a reference model trained on Wikipedia (+ books), as CCNet does.
  Columns `ppl` and `ppl_bucket`: `head` up to the 30th percentile of a reference sample's perplexities,
  `middle` up to the 60th, `tail` above (CCNet's 30/60 split). The cut-offs are stored in the model card
  when the model is trained (or re-computed on one's own crawl with `curate models calibrate-lm`), and
  `cutoffs` overrides them. Drops: `ppl:bucket_<name>` for buckets listed in `drop_buckets`,
  `ppl:above_max` above `max_ppl`.
- `harmful_ppl` scores documents with a model trained on harmful text (4chan threads, toxic tweets,
  hateful forum sentences). Here LOW perplexity is the signal: the document reads like the harmful
  corpus ("Perplexed by Quality", 2022). Column `harmful_ppl`; `drop_below` (a number, or `card` for the
  threshold chosen at training time on held-out harmful vs clean documents) drops as `harmful_ppl:below`.

Both stages take `models: {en: wiki-5gram, fr: fr-5gram}` to score each document with the model of its
language (`lang`, from the langid stage), each with its own card's cut-offs; documents of a language
without a model get a null score, counted as `<stage>:no_model_for_<lang>` (filters.language_models).

Models are named (`wiki-5gram`, `harmful-5gram` by default) and resolved in the model registry; a
missing model is a config error naming `curate models train-lm`. How they are trained, evaluated and
calibrated: `filters.perplexity_recipe` (this module only scores, so a worker never imports the training
code).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curate.stages.base import Resources, Stage, StageParams, StageResult, set_columns
from filters.kenlm_lm import load_kenlm, perplexities
from filters.language_models import EVERY_LANGUAGE, check_language_models, language_warning, scorer_groups
from filters.lm_normalize_kernel import warm_up
from filters.model_registry import ModelFolderParams, ModelsDir, pinned_home, require_model

KIND = "kenlm"
BUCKETS = ("head", "middle", "tail")


class PerplexityParams(ModelFolderParams, StageParams):
    model: str = Field(default="wiki-5gram", description="model name in the registry")
    models: dict[str, str] | None = Field(
        default=None,
        description="a model per language of the `lang` column (langid first), e.g. {en: wiki-5gram, "
        "fr: fr-5gram}; other languages get a null score, counted as <stage>:no_model_for_<lang>",
        exclude_if=lambda models: models is None,  # unset, it leaves the config hash of older configs as is
    )
    models_dir: ModelsDir = None
    column: str = "ppl"
    bucket_column: str | None = "ppl_bucket"
    cutoffs: tuple[float, float] | None = Field(default=None, description="override the card's cut-offs")
    drop_buckets: list[Literal["head", "middle", "tail"]] = []
    max_ppl: float | None = Field(default=None, gt=0)
    drop_below: float | Literal["card"] | None = Field(
        default=None, description="drop documents with perplexity below this (harmful-text models)"
    )

    stage_name: ClassVar[str] = "perplexity"

    @model_validator(mode="after")
    def _models_exist(self) -> PerplexityParams:
        self.models_dir = pinned_home(self.models_dir)
        if self.models is not None and "model" in self.model_fields_set:
            raise ValueError("give `model` (one for every document) or `models` (one per language), not both")
        if self.models is not None and self.cutoffs is not None:
            raise ValueError(
                "`cutoffs` would apply to every language's model; with `models`, calibrate each model on "
                "text of its language instead (`curate models calibrate-lm`)"
            )
        if self.cutoffs is not None and self.cutoffs[0] > self.cutoffs[1]:
            raise ValueError(f"cutoffs {list(self.cutoffs)} must be ascending")
        if self.models is not None:
            check_language_models(self.models, KIND, self.models_dir)
        for name in self.model_names():
            model = require_model(name, KIND, self.models_dir)
            if self.drop_below == "card" and "flag_below" not in model.card.extra:
                raise ValueError(f"model {name!r} has no flag_below in its card; give drop_below a number")
        return self

    def models_by_language(self) -> dict[str, str]:
        """`models`, or the single `model` for every language (EVERY_LANGUAGE)."""
        return self.models if self.models is not None else {EVERY_LANGUAGE: self.model}

    def model_names(self) -> list[str]:
        return list(self.models_by_language().values())

    def run_warnings(self) -> list[str]:
        """Said when a run starts and kept in its manifest: with `models`, which documents get no score."""
        return [] if self.models is None else [language_warning(self.stage_name, self.models, self.column)]


class HarmfulPerplexityParams(PerplexityParams):
    stage_name: ClassVar[str] = "harmful_ppl"
    model: str = "harmful-5gram"
    column: str = "harmful_ppl"
    bucket_column: str | None = None
    drop_below: float | Literal["card"] | None = "card"


class Perplexity(Stage):
    name = "perplexity"
    Params = PerplexityParams
    params: PerplexityParams
    drops = {
        "ppl:bucket_<b>": "the document's bucket is in `drop_buckets`",
        "ppl:above_max": "`ppl` above `max_ppl` (when set)",
        "ppl:below": "`ppl` below `drop_below` (when set)",
    }
    resources = Resources(cpus=1.0, memory_mb=2048)

    def output_fields(self) -> list[pa.Field]:
        fields = [pa.field(self.params.column, pa.float32())]
        if self.params.bucket_column:
            fields.append(pa.field(self.params.bucket_column, pa.string()))
        return fields

    def setup(self) -> None:
        warm_up()  # the compiled text kernels load (or compile) once per worker, not in its first batch
        self._scorers = {lang: self._scorer(name) for lang, name in self.params.models_by_language().items()}

    def _scorer(self, name: str) -> LmScorer:
        model = require_model(name, KIND, self.params.models_dir)
        below = self.params.drop_below
        return LmScorer(
            load_kenlm(str(model.path("model"))),
            list(self.params.cutoffs or model.card.extra["cutoffs"]),
            model.card.extra["flag_below"] if below == "card" else below,
        )

    def process(self, batch: pa.Table) -> StageResult:
        ppl = np.full(batch.num_rows, np.nan)
        drop_below = np.full(batch.num_rows, np.nan)
        buckets = np.full(batch.num_rows, None, dtype=object)
        stats: Counter = Counter()
        by_language = self.params.models is not None
        for scorer, rows, texts in scorer_groups(batch, self.name, self._scorers, by_language, stats):
            ppl[rows] = perplexities(scorer.model, texts)
            if scorer.drop_below is not None:
                drop_below[rows] = scorer.drop_below
            if self.params.bucket_column:
                buckets[rows] = bucketize(ppl[rows], scorer.cutoffs).to_pylist()
        ppl_array = pa.array(ppl.astype(np.float32), from_pandas=True)  # NaN (no tokens, no model) -> null
        columns: dict[str, pa.Array] = {self.params.column: ppl_array}
        if self.params.bucket_column:
            columns[self.params.bucket_column] = pa.array(buckets.tolist(), pa.string())
            stats.update({f"bucket:{b}": n for b, n in Counter(buckets.tolist()).items() if b})
        reasons = self._reasons(ppl, drop_below, buckets)
        return StageResult(set_columns(batch, columns), reasons, stats)

    def _reasons(self, ppl: np.ndarray, drop_below: np.ndarray, buckets: np.ndarray) -> pa.Array:
        """`drop_below` per row (NaN: no threshold), as each row's model has its own `flag_below`. The
        first reason that applies wins: below, above max, then a dropped bucket; no score, no reason."""
        prefix = self.params.column
        reasons = np.full(len(ppl), None, dtype=object)
        open_rows = np.isfinite(ppl)
        below = open_rows & (ppl < drop_below)  # a NaN threshold compares False
        reasons[below] = f"{prefix}:below"
        open_rows &= ~below
        if self.params.max_ppl is not None:
            above = open_rows & (ppl > self.params.max_ppl)
            reasons[above] = f"{prefix}:above_max"
            open_rows &= ~above
        for bucket in self.params.drop_buckets:
            reasons[open_rows & (buckets == bucket)] = f"{prefix}:bucket_{bucket}"
        return pa.array(reasons.tolist(), pa.string())


@dataclass(frozen=True)
class LmScorer:
    """One loaded model with its bucket cut-offs and drop threshold (from its card unless overridden)."""

    model: Any
    cutoffs: list[float]
    drop_below: float | None


class HarmfulPerplexity(Perplexity):
    name = "harmful_ppl"
    Params = HarmfulPerplexityParams
    params: HarmfulPerplexityParams
    drops = {
        "harmful_ppl:below": "`harmful_ppl` below `drop_below` (default: the threshold on the card)",
        "harmful_ppl:above_max": "`harmful_ppl` above `max_ppl` (when set)",
    }


def bucketize(ppl: np.ndarray, cutoffs: list[float]) -> pa.Array:
    """head <= cutoffs[0] < middle <= cutoffs[1] < tail; null where there is no perplexity."""
    index = np.searchsorted(np.asarray(cutoffs), np.nan_to_num(ppl, nan=0.0), side="left")
    names = np.asarray(BUCKETS, dtype=object)[index]
    return pc.if_else(pa.array(np.isfinite(ppl)), pa.array(names, pa.string()), pa.scalar(None, pa.string()))

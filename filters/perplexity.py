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

Models are named (`wiki-5gram`, `harmful-5gram` by default) and resolved in the model registry; a
missing model is a config error naming `curate models train-lm`. How they are trained, evaluated and
calibrated: `filters.perplexity_recipe` (this module only scores, so a worker never imports the training
code).
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curate.paths import PathValue
from curate.stages.base import Resources, Stage, StageParams, StageResult, set_columns
from filters.kenlm_lm import load_kenlm, perplexities
from filters.model_registry import ModelFolderParams, pinned_home, require_model

KIND = "kenlm"
BUCKETS = ("head", "middle", "tail")


class PerplexityParams(ModelFolderParams, StageParams):
    model: str = Field(default="wiki-5gram", description="model name in the registry")
    models_dir: PathValue | None = Field(
        default=None,
        description="registry folder (default: CURATE_MODELS, else .cache/models); pinned absolute",
    )
    column: str = "ppl"
    bucket_column: str | None = "ppl_bucket"
    cutoffs: tuple[float, float] | None = Field(default=None, description="override the card's cut-offs")
    drop_buckets: list[Literal["head", "middle", "tail"]] = []
    max_ppl: float | None = Field(default=None, gt=0)
    drop_below: float | Literal["card"] | None = Field(
        default=None, description="drop documents with perplexity below this (harmful-text models)"
    )

    @model_validator(mode="after")
    def _model_exists(self) -> PerplexityParams:
        self.models_dir = pinned_home(self.models_dir)
        model = require_model(self.model, KIND, self.models_dir)
        if self.drop_below == "card" and "flag_below" not in model.card.extra:
            raise ValueError(f"model {self.model!r} has no flag_below in its card; give drop_below a number")
        if self.cutoffs is not None and self.cutoffs[0] > self.cutoffs[1]:
            raise ValueError(f"cutoffs {list(self.cutoffs)} must be ascending")
        return self

    def model_names(self) -> list[str]:
        return [self.model]


class HarmfulPerplexityParams(PerplexityParams):
    model: str = "harmful-5gram"
    column: str = "harmful_ppl"
    bucket_column: str | None = None
    drop_below: float | Literal["card"] | None = "card"


class Perplexity(Stage):
    name = "perplexity"
    Params = PerplexityParams
    params: PerplexityParams
    resources = Resources(cpus=1.0, memory_mb=2048)

    def output_fields(self) -> list[pa.Field]:
        fields = [pa.field(self.params.column, pa.float32())]
        if self.params.bucket_column:
            fields.append(pa.field(self.params.bucket_column, pa.string()))
        return fields

    def setup(self) -> None:
        model = require_model(self.params.model, KIND, self.params.models_dir)
        self._model = load_kenlm(str(model.path("model")))
        self._cutoffs = list(self.params.cutoffs or model.card.extra["cutoffs"])
        below = self.params.drop_below
        self._drop_below = model.card.extra["flag_below"] if below == "card" else below

    def process(self, batch: pa.Table) -> StageResult:
        ppl = perplexities(self._model, batch.column("text"))
        ppl_array = pa.array(ppl.astype(np.float32), from_pandas=True)  # NaN (no tokens) -> null
        columns: dict[str, pa.Array] = {self.params.column: ppl_array}
        stats: Counter = Counter()
        buckets = None
        if self.params.bucket_column:
            buckets = bucketize(ppl, self._cutoffs)
            columns[self.params.bucket_column] = buckets
            stats.update({f"bucket:{b}": n for b, n in Counter(buckets.to_pylist()).items() if b})
        reasons = self._reasons(ppl, buckets)
        return StageResult(set_columns(batch, columns), reasons, stats)

    def _reasons(self, ppl: np.ndarray, buckets: pa.Array | None) -> pa.Array:
        prefix = self.params.column
        reasons: list[str | None] = [None] * len(ppl)
        for i, value in enumerate(ppl):
            if not np.isfinite(value):
                continue
            if self._drop_below is not None and value < self._drop_below:
                reasons[i] = f"{prefix}:below"
            elif self.params.max_ppl is not None and value > self.params.max_ppl:
                reasons[i] = f"{prefix}:above_max"
            elif buckets is not None and buckets[i].as_py() in self.params.drop_buckets:
                reasons[i] = f"{prefix}:bucket_{buckets[i].as_py()}"
        return pa.array(reasons, pa.string())


class HarmfulPerplexity(Perplexity):
    name = "harmful_ppl"
    Params = HarmfulPerplexityParams
    params: HarmfulPerplexityParams


def bucketize(ppl: np.ndarray, cutoffs: list[float]) -> pa.Array:
    """head <= cutoffs[0] < middle <= cutoffs[1] < tail; null where there is no perplexity."""
    index = np.searchsorted(np.asarray(cutoffs), np.nan_to_num(ppl, nan=0.0), side="left")
    names = np.asarray(BUCKETS, dtype=object)[index]
    return pc.if_else(pa.array(np.isfinite(ppl)), pa.array(names, pa.string()), pa.scalar(None, pa.string()))

"""toxicity: a fastText classifier of toxic text, combined with a word-list rate.

The stage writes `toxicity` = 1 - (1 - p) * (1 - w * s): a noisy-OR of the classifier's P(toxic) `p` and
the word-list score `s` = min(1, rate / `word_rate_saturation`), where rate is the share of a document's
words on better-profanity's list and `w` is `wordlist_weight`. Without a trained model the stage can fall
back to the word list alone (`s`, documented as weaker); it then counts `toxicity:wordlist_fallback` in the
stats, which the manifest records. `fallback: auto` falls back only when ../shared/data is absent (nothing
to train on); with the data present a missing model is an error naming `curate models train-toxicity`.
An empty document scores 0; `max_toxicity` drops above it as `toxicity:above_max`.

How the model is trained on ../shared/data/toxicity and evaluated: `filters.toxicity_recipe` (this module
only scores, so a worker never imports the training code).
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curate.stages.base import Resources, Stage, StageParams, StageResult, set_columns
from curate.textsources import shared_data_dir
from curate.utf8_arrays import as_text_array
from filters.fasttext_scoring import load_classifier, score_texts
from filters.lm_unicode import WORD_TRIM
from filters.model_registry import ModelFolderParams, ModelsDir, find_model, pinned_home, require_model
from filters.word_list_kernel import WordSet, warm_up, word_list_counts

KIND = "fasttext-toxicity"
MAX_CHARS = 20_000

# --------------------------------------------------------------------------------------- word list


@lru_cache(maxsize=1)
def profanity_words() -> frozenset[str]:
    """better-profanity's English word list (MIT), single-word entries only (26 of 917 are phrases)."""
    text = (resources.files("better_profanity") / "profanity_wordlist.txt").read_text(encoding="utf-8")
    return frozenset(w.strip().lower() for w in text.splitlines() if w.strip() and " " not in w.strip())


@lru_cache(maxsize=1)
def profanity_set() -> WordSet:
    return WordSet.of(profanity_words())


def profanity_rate(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Fraction of each document's whitespace tokens (punctuation trimmed, lowercased) on the word list.

    Arrow lowercases; one compiled pass splits, trims and looks tokens up (`filters.word_list_kernel`)."""
    hits, tokens = word_list_counts(pc.utf8_lower(as_text_array(texts)), profanity_set(), WORD_TRIM)
    counts = tokens.astype(np.float64)
    return np.divide(hits.astype(np.float64), counts, out=np.zeros(len(counts)), where=counts > 0)


# ---------------------------------------------------------------------------------------------- stage


class ToxicityParams(ModelFolderParams, StageParams):
    model: str = Field(default="toxicity", description="model name in the registry")
    models_dir: ModelsDir = None
    fallback: Literal["auto", "wordlist", "error"] = Field(
        default="auto", description="without a model: auto = word list only when ../shared/data is absent"
    )
    wordlist_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    word_rate_saturation: float = Field(default=0.02, gt=0.0, le=1.0)
    max_toxicity: float | None = Field(default=None, ge=0.0, le=1.0, description="drop above this")

    @model_validator(mode="after")
    def _model_or_fallback(self) -> ToxicityParams:
        """Pin the models folder and resolve `auto` here, on the driver, so workers decide the same way."""
        self.models_dir = pinned_home(self.models_dir)
        if self.fallback == "auto":
            self.fallback = "wordlist" if shared_data_dir() is None else "error"
        if not self.uses_wordlist_only():
            require_model(self.model, KIND, self.models_dir)
        return self

    def uses_wordlist_only(self) -> bool:
        """True when the stage will run on the word list alone (no model, and falling back is allowed)."""
        return self.fallback == "wordlist" and find_model(self.model, self.models_dir) is None

    def model_names(self) -> list[str]:
        return [] if self.uses_wordlist_only() else [self.model]

    def run_warnings(self) -> list[str]:
        """Said when a run starts and kept in its manifest: a fallback must never pass in silence."""
        if not self.uses_wordlist_only():
            return []
        return [
            f"toxicity: no model {self.model!r} in {self.models_dir}, so scores come from the word list "
            "alone (weaker); train one with `curate models train-toxicity`, "
            "or set `fallback: error` to refuse"
        ]


class Toxicity(Stage):
    name = "toxicity"
    Params = ToxicityParams
    params: ToxicityParams
    drops = {"toxicity:above_max": "`toxicity` above `max_toxicity` (when set)"}
    resources = Resources(cpus=1.0, memory_mb=1024)

    def output_fields(self) -> list[pa.Field]:
        return [pa.field("toxicity", pa.float32())]

    def setup(self) -> None:
        warm_up()  # the compiled text kernels load (or compile) once per worker, not in its first batch
        self._model = None
        if not self.params.uses_wordlist_only():
            model = require_model(self.params.model, KIND, self.params.models_dir)
            self._model = load_classifier(str(model.path("model")))

    def process(self, batch: pa.Table) -> StageResult:
        text = batch.column("text")
        words = np.minimum(1.0, profanity_rate(text) / self.params.word_rate_saturation)
        stats: Counter = Counter()
        if self._model is None:
            score = words
            stats["toxicity:wordlist_fallback"] = batch.num_rows
        else:
            p = score_texts(self._model, text, MAX_CHARS)
            score = 1.0 - (1.0 - p) * (1.0 - self.params.wordlist_weight * words)
        empty = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0), True).to_numpy(
            zero_copy_only=False
        )
        score = np.where(empty, 0.0, score)
        reasons = pa.nulls(batch.num_rows, pa.string())
        if self.params.max_toxicity is not None:
            over = score > self.params.max_toxicity
            reasons = pa.array(np.where(over, "toxicity:above_max", None), pa.string())
            stats["toxicity:above_max"] = int(over.sum())
        table = set_columns(batch, {"toxicity": pa.array(score.astype(np.float32))})
        return StageResult(table, reasons, stats)

"""toxicity: a fastText classifier trained on ../shared/data/toxicity, combined with a word-list rate.

Labels (`toxicity_examples`):
- Davidson et al. tweets: `hate_speech` (class 0) and `offensive_language` (1) -> toxic; `neither` (2) -> 0.
- Stormfront sentences: `hate` -> toxic; `noHate` -> 0; `relation` and `idk/skip` are left out.
- 4chan threads, the toxic web domain: cut into ~60-word chunks -> toxic. To keep "long web prose" from
  becoming the toxic signal, as many clean chunks of the same size are drawn from Wikipedia (gensim's
  pages), gensim's news, the Gutenberg books and the ../shared/data/web documents -> 0.
Retweet markers, @handles, URLs and HTML entities are removed first (they mark the source, not toxicity).
10% of the groups (a tweet, a sentence, a thread, a source document) are held out; the card records
precision, recall, F1 and ROC-AUC on the held-out labelled tweets + sentences, per data set, and on the
held-out domain chunks.

The stage writes `toxicity` = 1 - (1 - p) * (1 - w * s): a noisy-OR of the classifier's P(toxic) `p` and
the word-list score `s` = min(1, rate / `word_rate_saturation`), where rate is the share of a document's
words on better-profanity's list and `w` is `wordlist_weight`. Without a trained model the stage can fall
back to the word list alone (`s`, documented as weaker); it then counts `toxicity:wordlist_fallback` in the
stats, which the manifest records. `fallback: auto` falls back only when ../shared/data is absent (nothing
to train on); with the data present a missing model is an error naming `curate models train-toxicity`.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curate.paths import PathValue
from curate.stages.base import Resources, Stage, StageParams, StageResult, set_columns
from curate.stages.registry import register
from curate.textsources import shared_data_dir
from filters import corpora
from filters.fasttext_models import (
    Example,
    evaluate,
    load_classifier,
    profanity_rate,
    score_texts,
    split,
    train_classifier,
)
from filters.model_registry import (
    Model,
    ModelCard,
    ModelWriter,
    find_model,
    pinned_home,
    require_model,
    texts_checksum,
)

KIND = "fasttext-toxicity"
CHUNK_WORDS = 60
MAX_CHARS = 20_000

# ---------------------------------------------------------------------------------------- training data


def toxicity_examples(toxicity: Path, seed: int = 13) -> dict[str, list[Example]]:
    """Labelled examples by data set (see the module docstring for the mapping)."""
    sets: dict[str, list[Example]] = {
        "davidson": [(t, y, f"davidson/{i}") for i, (t, y) in enumerate(corpora.davidson_examples(toxicity))],
        "stormfront": [
            (t, y, f"stormfront/{i}") for i, (t, y) in enumerate(corpora.stormfront_examples(toxicity))
        ],
    }
    toxic_chunks = [
        (chunk, 1, source)
        for source, text in corpora.fourchan_threads(toxicity)
        for chunk in corpora.chunk_lines(text, CHUNK_WORDS)
    ]
    clean = [
        (chunk, 0, source)
        for source, text in clean_documents(toxicity.parent)
        for chunk in corpora.chunk_lines(text, CHUNK_WORDS)
    ]
    random.Random(seed).shuffle(clean)
    sets["domain"] = toxic_chunks + clean[: len(toxic_chunks)]
    return sets


def clean_documents(shared: Path) -> list[corpora.Doc]:
    """Non-toxic prose of every kind at hand, for the domain negatives."""
    docs = list(corpora.gensim_wikipedia()) + list(corpora.news_documents())
    docs += list(corpora.web_documents(shared))
    docs += list(corpora.book_documents(shared / "domains" / "books", max_chars=3_000_000))
    return docs


# ------------------------------------------------------------------------------------------- training


def train_toxicity(
    name: str = "toxicity", hyperparams: dict[str, Any] | None = None, home: Path | None = None, log=print
) -> Model:
    """Train the toxicity classifier on ../shared/data/toxicity, evaluate on the held-out 10%, register."""
    shared = shared_data_dir()
    if shared is None or not (shared / "toxicity").is_dir():
        raise FileNotFoundError(
            "training the toxicity model needs ../shared/data/toxicity (or CURATE_SHARED_DATA); without it "
            "the toxicity stage falls back to the better-profanity word list"
        )
    sets = toxicity_examples(shared / "toxicity")
    train = [e for examples in sets.values() for e in split(examples)[0]]
    tests = {key: split(examples)[1] for key, examples in sets.items()}
    log(f"training {name!r} on {len(train):,} examples ({sum(e[1] for e in train):,} toxic)")
    with ModelWriter(name, home) as writer:
        facts = train_classifier(train, writer.directory / "model.bin", MAX_CHARS, hyperparams)
        model = load_classifier(str(writer.directory / "model.bin"))
        labelled = tests["davidson"] + tests["stormfront"]
        metrics = {
            "held_out": evaluate(model, labelled, MAX_CHARS),
            **{f"held_out_{key}": evaluate(model, examples, MAX_CHARS) for key, examples in tests.items()},
            **{k: v for k, v in facts.items() if k != "hyperparams"},
        }
        card = ModelCard(
            name=name,
            kind=KIND,
            files={"model": "model.bin"},
            params={
                "max_chars": MAX_CHARS,
                "chunk_words": CHUNK_WORDS,
                "test_percent": 10,
                "labels": "davidson hate+offensive=1 neither=0; stormfront hate=1 noHate=0; "
                "4chan chunks=1 vs clean chunks=0",
                **facts["hyperparams"],
            },
            data=[texts_checksum(key, (e[0] for e in examples)) for key, examples in sets.items()],
            metrics=metrics,
        )
        load_classifier.cache_clear()
        registered = writer.commit(card)
    held = metrics["held_out"]
    log(f"{name}: held-out F1 {held['f1']}, ROC-AUC {held['roc_auc']}")
    return registered


# ---------------------------------------------------------------------------------------------- stage


class ToxicityParams(StageParams):
    model: str = Field(default="toxicity", description="model name in the registry")
    models_dir: PathValue | None = Field(
        default=None,
        description="registry folder (default: CURATE_MODELS, else .cache/models); pinned absolute",
    )
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


@register
class Toxicity(Stage):
    name = "toxicity"
    Params = ToxicityParams
    params: ToxicityParams
    resources = Resources(cpus=1.0, memory_mb=1024)

    def output_fields(self) -> list[pa.Field]:
        return [pa.field("toxicity", pa.float32())]

    def setup(self) -> None:
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

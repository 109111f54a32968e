"""How the `toxicity` stage's fastText model is trained and evaluated (`curate models train-toxicity`).

Labels (`toxicity_examples`), all from ../shared/data/toxicity:
- Davidson et al. tweets: `hate_speech` (class 0) and `offensive_language` (1) -> toxic; `neither` (2) -> 0.
- Stormfront sentences: `hate` -> toxic; `noHate` -> 0; `relation` and `idk/skip` are left out.
- 4chan threads, the toxic web domain: cut into ~60-word chunks -> toxic. To keep "long web prose" from
  becoming the toxic signal, as many clean chunks of the same size are drawn from Wikipedia (gensim's
  pages), gensim's news, the Gutenberg books and the ../shared/data/web documents -> 0.
Retweet markers, @handles, URLs and HTML entities are removed first (they mark the source, not toxicity).
10% of the groups (a tweet, a sentence, a thread, a source document) are held out; the card records
precision, recall, F1 and ROC-AUC on the held-out labelled tweets + sentences, per data set, and on the
held-out domain chunks.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from curate.textsources import shared_data_dir
from filters import corpora
from filters.fasttext_scoring import load_classifier
from filters.fasttext_training import Example, evaluate, split, train_classifier
from filters.model_registry import Model, ModelCard, ModelWriter, texts_checksum
from filters.toxicity import KIND, MAX_CHARS

CHUNK_WORDS = 60

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

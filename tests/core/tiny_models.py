"""A small real toxicity model for executor tests: fastText on 4,000 Davidson tweets, in a few seconds.

The executor tests need a stage that loads a model folder, not a good model; `curate models
train-toxicity` takes far longer, so this trains the same kind of model on a slice of its data.
"""

from __future__ import annotations

from pathlib import Path

from filters import corpora
from filters.fasttext_training import train_classifier
from filters.model_registry import ModelCard, ModelWriter
from filters.toxicity import KIND, MAX_CHARS

TINY_FASTTEXT = {"epoch": 2, "dim": 8, "bucket": 20_000}


def train_tiny_toxicity(shared: Path, home: Path, name: str = "tiny-toxicity") -> Path:
    """Registers `name` under `home` and returns its folder."""
    tweets = list(corpora.davidson_examples(shared / "toxicity"))[:4000]
    examples = [(text, label, f"davidson/{index}") for index, (text, label) in enumerate(tweets)]
    with ModelWriter(name, home) as writer:
        facts = train_classifier(examples, writer.directory / "model.bin", MAX_CHARS, TINY_FASTTEXT)
        card = ModelCard(name=name, kind=KIND, files={"model": "model.bin"}, params=facts["hyperparams"])
        return writer.commit(card).directory

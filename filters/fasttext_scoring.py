"""Scoring with a trained fastText binary classifier (toxicity, quality): the stages' side only.

Why its own module: a worker or Ray actor that scores imports this and never the training code
(`filters.fasttext_training`: the child-process trainer, retries, sanity checks, evaluation metrics).

Text preparation (`classifier_lines`) reuses the KenLM normalisation (CCNet: lowercase, accents off,
digits -> 0, punctuation map, punctuation split into tokens) and joins paragraphs with spaces, because
fastText reads one example per line. Documents are cut to `max_chars` first: classifiers need the gist,
not a whole book, and the cap bounds time per document. Training prepares its examples the same way, so a
model sees text at scoring time as it saw it in training. A whole Arrow batch is scored in one fastText
call.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.kenlm_lm import normalize_for_lm

POSITIVE = "__label__1"
NEGATIVE = "__label__0"


def classifier_lines(texts: pa.Array | pa.ChunkedArray | Sequence[str | None], max_chars: int) -> list[str]:
    """Documents as single normalised lines (see the module docstring)."""
    array = texts if isinstance(texts, pa.Array | pa.ChunkedArray) else pa.array(texts, pa.large_string())
    array = pc.utf8_slice_codeunits(pc.fill_null(array, ""), 0, max_chars)
    return pc.replace_substring(normalize_for_lm(array), "\n", " ").to_pylist()


@lru_cache(maxsize=4)
def load_classifier(path: str):
    import fasttext

    return fasttext.load_model(path)


def positive_probability(model, lines: list[str]) -> np.ndarray:
    """P(label 1) per line, from one batched fastText call."""
    labels, probs = model.predict(lines, k=2)
    out = np.empty(len(lines), dtype=np.float64)
    for i, (names, values) in enumerate(zip(labels, probs, strict=True)):
        scores = dict(zip(names, values, strict=True))
        if POSITIVE in scores:
            out[i] = scores[POSITIVE]
        else:
            out[i] = 1.0 - scores.get(NEGATIVE, 0.5)
    return np.clip(out, 0.0, 1.0)


def score_texts(model, texts, max_chars: int) -> np.ndarray:
    return positive_probability(model, classifier_lines(texts, max_chars))

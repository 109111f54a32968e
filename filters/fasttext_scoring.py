"""Scoring with a trained fastText binary classifier (toxicity, quality): the stages' side only.

Why its own module: a worker or Ray actor that scores imports this and never the training code
(`filters.fasttext_training`: the child-process trainer, retries, sanity checks, evaluation metrics).

Text preparation (`classifier_lines`) reuses the KenLM normalisation (CCNet: lowercase, accents off,
digits -> 0, punctuation map, punctuation split into tokens) and joins paragraphs with spaces, because
fastText reads one example per line. Documents are cut to `max_chars` first: classifiers need the gist,
not a whole book, and the cap bounds time per document. Training prepares its examples the same way, so a
model sees text at scoring time as it saw it in training. A whole Arrow batch is scored in one fastText
call, and its lines are built once per text column (toxicity and quality share them, and share the
normalisation with the KenLM stages: filters.batch_memo).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.batch_memo import memoized
from filters.kenlm_lm import lm_normalized, normalize_for_lm

POSITIVE = "__label__1"
NEGATIVE = "__label__0"


def classifier_lines(texts: pa.Array | pa.ChunkedArray | Sequence[str | None], max_chars: int) -> list[str]:
    """Documents as single normalised lines (see the module docstring); a batch's text column gets its
    lines once (filters.batch_memo), a list (training data) directly."""
    if isinstance(texts, pa.Array | pa.ChunkedArray):
        return memoized("classifier_lines", texts, (max_chars,), lambda: _column_lines(texts, max_chars))
    prefixes = pc.utf8_slice_codeunits(pc.fill_null(pa.array(texts, pa.large_string()), ""), 0, max_chars)
    return _one_line(normalize_for_lm(prefixes)).to_pylist()


def _column_lines(texts: pa.Array | pa.ChunkedArray, max_chars: int) -> list[str]:
    """The same lines for a text column: a text no longer than the cap is its own prefix, so its line comes
    from the column's memoised normalisation (`lm_normalized`, shared with the KenLM stages); only the
    longer texts are normalised again, cut."""
    filled = pc.fill_null(texts, "")
    prefixes = pc.utf8_slice_codeunits(filled, 0, max_chars)
    cut = pc.not_equal(pc.binary_length(prefixes), pc.binary_length(filled))
    longer = np.flatnonzero(cut.to_numpy(zero_copy_only=False))
    lines = _one_line(lm_normalized(texts)).to_pylist()
    if len(longer):
        cut_lines = _one_line(normalize_for_lm(prefixes.take(pa.array(longer)))).to_pylist()
        for row, line in zip(longer.tolist(), cut_lines, strict=True):
            lines[row] = line
    return lines


def _one_line(normalized: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    return pc.replace_substring(normalized, "\n", " ")


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

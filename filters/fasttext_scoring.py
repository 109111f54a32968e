"""Scoring with a trained fastText binary classifier (toxicity, quality): the stages' side only.

Why its own module: a worker or Ray actor that scores imports this and never the training code
(`filters.fasttext_training`: the child-process trainer, retries, sanity checks, evaluation metrics).

Text preparation (`classifier_lines`) reuses the KenLM normalisation (CCNet: lowercase, accents off,
digits -> 0, punctuation map, punctuation split into tokens) and joins paragraphs with spaces, because
fastText reads one example per line. Documents are cut to `max_chars` first: classifiers need the gist,
not a whole book, and the cap bounds time and memory per document. Training prepares its examples the same
way, so a model sees text at scoring time as it saw it in training. A whole Arrow batch is scored in one
compiled pass (`filters.fasttext_kernel`: fastText's prediction, about half its CPU), and its texts are
prepared once per text column (toxicity and quality share them, and share the normalisation with the
KenLM stages: filters.batch_memo).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.utf8_arrays import as_text_array
from filters.batch_memo import memoized
from filters.fasttext_kernel import CompiledClassifier
from filters.kenlm_lm import lm_normalized, normalize_for_lm
from filters.model_files import check_fasttext_file

POSITIVE = "__label__1"
NEGATIVE = "__label__0"


def classifier_lines(texts: Sequence[str | None], max_chars: int) -> list[str]:
    """Documents as the single normalised lines fastText trains on (see the module docstring)."""
    return _one_line(_normalized_prefixes(texts, max_chars)).to_pylist()


def _normalized_prefixes(texts: Sequence[str | None], max_chars: int) -> pa.Array:
    prefixes = pc.utf8_slice_codeunits(pc.fill_null(pa.array(texts, pa.large_string()), ""), 0, max_chars)
    return normalize_for_lm(prefixes)


def classifier_texts(texts: pa.Array | pa.ChunkedArray, max_chars: int) -> pa.Array:
    """The normalised texts the classifiers score, newlines kept (the compiled scorer reads them as
    spaces, as fastText read the lines it trained on), computed once per text column (filters.batch_memo).
    A text no longer than the cap is its own prefix, so it comes from the column's memoised normalisation
    (`lm_normalized`, shared with the KenLM stages); only the longer texts are normalised again, cut."""
    return memoized("classifier_texts", texts, (max_chars,), lambda: _cut_normalized(texts, max_chars))


def _cut_normalized(texts: pa.Array | pa.ChunkedArray, max_chars: int) -> pa.Array:
    filled = as_text_array(texts)
    prefixes = pc.utf8_slice_codeunits(filled, 0, max_chars)
    cut = pc.not_equal(pc.binary_length(prefixes), pc.binary_length(filled))
    longer = np.flatnonzero(cut.to_numpy(zero_copy_only=False))
    normalized = as_text_array(lm_normalized(texts))
    if not len(longer):
        return normalized
    normalized_cuts = normalize_for_lm(prefixes.take(pa.array(longer))).cast(normalized.type)
    source = np.arange(len(normalized))
    source[longer] = len(normalized) + np.arange(len(longer))
    return pa.concat_arrays([normalized, normalized_cuts]).take(pa.array(source))


def _one_line(normalized: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    return pc.replace_substring(normalized, "\n", " ")


@lru_cache(maxsize=4)
def load_classifier(path: str) -> CompiledClassifier:
    """One compiled scorer per model file per process (fastText's own copy is released)."""
    import fasttext

    check_fasttext_file(path)
    return CompiledClassifier.of(fasttext.load_model(path), POSITIVE)


def score_texts(model: CompiledClassifier, texts, max_chars: int) -> np.ndarray:
    """P(label 1) of every text, cut and normalised as the classifier was trained (a list or a column)."""
    if isinstance(texts, pa.Array | pa.ChunkedArray):
        prepared = classifier_texts(texts, max_chars)
    else:
        prepared = _normalized_prefixes(texts, max_chars)
    return model.probabilities(prepared)

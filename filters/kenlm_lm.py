"""KenLM n-gram models, the scoring side: CCNet's text normalisation and document perplexity.

Normalisation (`normalize_for_lm`) follows CCNet's `text_normalizer.normalize` with its defaults, so the
reference model and the documents it scores see text the same way:

- lowercase;
- accents stripped: NFD, then every combining mark (Unicode category Mn) removed;
- every decimal digit (any script) becomes `0`, so numbers share statistics;
- CCNet's Unicode punctuation map (`，`->`,`, `。`->`. `, curly and angle quotes -> `"`, `’`/`´` -> `'`,
  `–`/`━`/`►` -> `-`, `—` -> ` - `, `…` -> `...`, full-width `？！（）；：％` to ASCII, ...);
- non-printing characters (controls other than newline and tab, format characters such as ZWSP) removed.

One deliberate difference: CCNet scores SentencePiece pieces; with no hub download there is no
SentencePiece model, so punctuation and symbols are split off as their own tokens instead and tokens are
whitespace-separated. Paragraphs (lines) are scored as sentences with <s> and </s>, and a document's
perplexity is CCNet's: 10 ** (-sum of log10 probabilities / (tokens + one </s> per line)).

Everything runs on a whole Arrow batch at once: Arrow's lowercasing, then one compiled pass over the
UTF-8 bytes (`filters.lm_normalize_kernel`, with per-code-point tables asked of RE2 and utf8proc,
`filters.lm_unicode`), then the model's queries in compiled code too (`filters.kenlm_query`). The
normalised column, its lines and the perplexities are memoised per text column (filters.batch_memo), so
the stages of one chain normalise a batch and split its lines once, and score it once per model.
Training a model (lmplz + build_binary on a corpus normalised the same way) is `filters.kenlm_training`, so
a stage that scores never imports the training code or the tool builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.utf8_arrays import as_text_array, utf8_buffers
from filters.batch_memo import memoized
from filters.kenlm_query import ProbingLm
from filters.lm_normalize_kernel import normalize_lowered


def normalize_for_lm(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """CCNet normalisation of whole documents (newlines kept as paragraph breaks), plus the punctuation
    split that stands in for SentencePiece; see the module docstring. Arrow lowercases, one compiled pass
    does the rest (`filters.lm_normalize_kernel`)."""
    return normalize_lowered(pc.utf8_lower(as_text_array(texts)))


def normalize_text(text: str) -> str:
    """One string through `normalize_for_lm` (for corpora and tests; batches should use the array form)."""
    return normalize_for_lm(pa.array([text], pa.large_string()))[0].as_py()


# ------------------------------------------------------------------------------------------- scoring


@lru_cache(maxsize=4)
def load_kenlm(path: str) -> ProbingLm:
    """One loaded model per file per process, read by `filters.kenlm_query` (not the kenlm module: its
    per-line calls cost about twice the CPU)."""
    return ProbingLm.load(path)


def document_perplexities(model: ProbingLm, normalized: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """CCNet document perplexity per normalised text; NaN for a text with no tokens.

    The model scores every non-empty line (`scoring_lines`) with <s> and </s>. `np.bincount` adds each
    document's line scores in line order from 0.0, the same additions as a per-document loop, so the
    result is bit-identical to it."""
    return lines_perplexities(model, scoring_lines(normalized))


def lines_perplexities(model: ProbingLm, lines: ScoringLines) -> np.ndarray:
    """`document_perplexities` of lines already split."""
    log10 = model.line_scores(lines.data, lines.offsets)
    total = np.bincount(lines.parents, weights=log10, minlength=lines.documents)
    length = np.bincount(lines.parents, weights=lines.tokens, minlength=lines.documents)
    exponents = (-total / np.maximum(length, 1)).tolist()
    powers = np.fromiter((10.0**e for e in exponents), dtype=np.float64, count=len(exponents))  # libm's pow,
    return np.where(length > 0, powers, np.nan)  # as the loop had: numpy's SIMD pow can differ by an ulp


@dataclass(frozen=True)
class ScoringLines:
    """The non-empty lines of a normalised column, as the model scores them."""

    data: np.ndarray
    offsets: np.ndarray
    """The lines' UTF-8 bytes and where each starts (Arrow's buffers, not copied)."""
    parents: np.ndarray
    """The document of each line."""
    tokens: np.ndarray
    """Each line's tokens + one </s>."""
    documents: int


def scoring_lines(normalized: pa.Array | pa.ChunkedArray) -> ScoringLines:
    """Lines split, filtered and token-counted by Arrow kernels, once per column for every model."""
    normalized = as_text_array(normalized)
    lines = pc.split_pattern(pc.fill_null(normalized, ""), "\n")
    flat, parents = pc.list_flatten(lines), pc.list_parent_indices(lines)
    keep = pc.greater(pc.binary_length(flat), 0)
    flat, parents = flat.filter(keep), parents.filter(keep).to_numpy()
    tokens = pc.add(pc.count_substring(flat, " "), 2).to_numpy()
    data, offsets = utf8_buffers(flat)
    return ScoringLines(data, offsets, parents, tokens, len(normalized))


def lm_normalized(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`normalize_for_lm` of a batch's texts, computed once per text column (filters.batch_memo), since
    the perplexity, harmful_ppl, toxicity and quality stages all start from it."""
    return memoized("normalize_for_lm", texts, (), lambda: normalize_for_lm(texts))


def perplexities(model, texts: pa.Array | pa.ChunkedArray | list[str]) -> np.ndarray:
    """Raw texts -> normalised -> document perplexities; an Arrow column already scored by this very
    model (the perplexity stage before quality's ensemble) is not scored again (filters.batch_memo)."""
    if isinstance(texts, list):
        return document_perplexities(model, normalize_for_lm(pa.array(texts, pa.large_string())))
    return memoized("perplexities", texts, (model,), lambda: _score_column(model, texts))


def _score_column(model, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column's lines are split once for every model (perplexity and harmful_ppl share them)."""
    normalized = lm_normalized(texts)
    return lines_perplexities(
        model, memoized("scoring_lines", normalized, (), lambda: scoring_lines(normalized))
    )

"""Line and paragraph rules over every line of a chunk at once: Gopher's duplicate lines and paragraphs,
its bullet and ellipsis lines, FineWeb's line statistics and C4's virtual line removal (`c4lines`).

Why Arrow: lines are ~20x fewer than tokens, but Python loops over them cost about a third of the stage.
The chunk's texts are split once into an Arrow list array (at '\\n' and at `str.splitlines`' breaks), and
each rule is a compute kernel over the flattened lines (trim, regex, length, hashing) plus a per-document
`np.bincount`. Whitespace means Python's `str.isspace` exactly (spelled out as a character class), so
every count equals the per-document `str` code it replaced (tests/filters/heuristics_reference.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.rules.c4lines import c4_line_checks
from filters.rules.languages import ENGLISH_CHARS_PER_WORD, LanguageRun
from filters.rules.settings import BULLETS, ELLIPSES, TERMINAL_PUNCTUATION, WHITESPACE, RuleSet
from filters.rules.strings import (
    LineSplit,
    ends_before_space,
    ends_with_char,
    is_blank,
    repeats,
    starts_after_space,
    string_ids,
)


@dataclass
class LineStats:
    """Per-document line statistics of one chunk; a family's fields are None when it is disabled."""

    duplicates: np.ndarray | None = None  # (n, 4): dup paragraph frac, their char frac, same for lines
    bullets: np.ndarray | None = None  # (n, 3): lines (at least 1), bullet lines, ellipsis lines
    lorem: np.ndarray | None = None  # C4: a kept line holds "lorem ipsum"
    curly: np.ndarray | None = None  # C4: a kept line holds '{'
    few_sentences: np.ndarray | None = None  # C4: fewer than min_sentences in the lines C4 keeps
    fineweb: np.ndarray | None = None  # (n, 4): non-blank lines, punctuated, short, chars in repeats


def measure_lines(texts: Sequence[str], rules: RuleSet, runs: list[LanguageRun]) -> LineStats:
    """Every line statistic the enabled rule families need, for documents in `runs`' languages."""
    array = pa.array(texts, pa.large_string())
    stats = LineStats()
    at_newlines = None
    if rules.gopher_repetition.enabled or rules.fineweb.enabled:
        at_newlines = LineSplit.at(array, "\n")
        line_ids = string_ids(at_newlines.lines)
        if rules.gopher_repetition.enabled:
            stats.duplicates = _duplicates(texts, array, at_newlines, line_ids)
        if rules.fineweb.enabled:
            short = short_line_length(rules.fineweb.short_line_length, runs[0].chars_per_word)
            stats.fineweb = _fineweb(at_newlines, line_ids, short)
        del line_ids
    if rules.gopher_quality.enabled or rules.c4.enabled:
        lines = LineSplit.splitlines(texts, array, at_newlines)
        del at_newlines
        if rules.gopher_quality.enabled:
            stats.bullets = _bullets_and_ellipses(lines)
        if rules.c4.enabled:
            stats.lorem, stats.curly, stats.few_sentences = c4_line_checks(texts, lines, rules.c4, runs)
    return stats


def short_line_length(chars: int, chars_per_word: float) -> int:
    """FineWeb's short line (<= 30 characters, ~4 English words) in an unspaced script: as many words,
    k letters each."""
    if chars_per_word == 1.0:
        return chars
    return max(1, round(chars / ENGLISH_CHARS_PER_WORD * chars_per_word))


def _duplicates(texts: Sequence[str], array: pa.Array, split: LineSplit, ids: np.ndarray) -> np.ndarray:
    """Gopher repetition on paragraphs (re.split('\\n\\n+') of the stripped text) and on lines
    (re.split('\\n+')): the duplicated elements' share of elements and of characters."""
    n_chars = np.maximum(np.fromiter(map(len, texts), np.float64, len(texts)), 1)
    out = np.zeros((len(texts), 4), dtype=np.float64)
    out[:, :2] = _paragraph_duplicates(array, n_chars)
    # re.split('\n+') drops the empty strings between newlines but keeps one at each end of the text
    lengths = np.asarray(pc.utf8_length(split.lines), dtype=np.int64)
    ends = np.zeros(len(lengths), dtype=bool)
    ends[split.offsets[:-1]] = True
    ends[split.offsets[1:][np.diff(split.offsets) > 1] - 1] = True
    kept = (lengths > 0) | ends
    docs = split.docs[kept]
    repeated = repeats(docs, ids[kept])
    out[:, 2] = np.bincount(docs, weights=repeated, minlength=split.n_docs) / np.bincount(docs)
    out[:, 3] = np.bincount(docs, weights=lengths[kept] * repeated, minlength=split.n_docs) / n_chars
    return out


def _paragraph_duplicates(array: pa.Array, n_chars: np.ndarray) -> np.ndarray:
    """(duplicated paragraphs / paragraphs, their characters / the text's) per document. A text with
    no blank line is one paragraph, so it scores 0 as Gopher's split would give it."""
    paragraphs = LineSplit.at(pc.utf8_trim(array, characters=WHITESPACE), "\n\n+", regex=True)
    repeated = repeats(paragraphs.docs, string_ids(paragraphs.lines))
    lengths = np.asarray(pc.utf8_length(paragraphs.lines), dtype=np.int64)
    counts = np.bincount(paragraphs.docs, minlength=paragraphs.n_docs)
    duplicated = np.bincount(paragraphs.docs, weights=repeated, minlength=paragraphs.n_docs)
    chars = np.bincount(paragraphs.docs, weights=lengths * repeated, minlength=paragraphs.n_docs)
    return np.stack([duplicated / counts, chars / n_chars], axis=1)


def _fineweb(split: LineSplit, ids: np.ndarray, short_line: int) -> np.ndarray:
    """FineWeb on the non-blank lines at '\\n': (lines, ending in terminal punctuation, at most
    `short_line` characters long, characters in lines repeating an earlier one)."""
    blank = is_blank(split.lines)
    lines, docs, ids = split.lines.filter(pa.array(~blank)), split.docs[~blank], ids[~blank]
    punctuated = ends_with_char(lines, TERMINAL_PUNCTUATION)
    lengths = np.asarray(pc.utf8_length(lines), dtype=np.int64)
    repeated = repeats(docs, ids)
    counts = [np.ones(len(docs), bool), punctuated, lengths <= short_line, lengths * repeated]
    return np.stack([np.bincount(docs, weights=c, minlength=split.n_docs) for c in counts], axis=1)


def _bullets_and_ellipses(split: LineSplit) -> np.ndarray:
    """(str.splitlines() lines, at least 1; lines starting with '•' or '-' after leading whitespace;
    lines ending in '...' or '…' before trailing whitespace)."""
    lines = split.lines
    bullet, ellipsis = starts_after_space(lines, "".join(BULLETS)), ends_before_space(lines, ELLIPSES)
    # splitlines() has no empty last line after a final line break (nor any line in '')
    trailing = np.asarray(pc.equal(pc.binary_length(lines.take(split.offsets[1:] - 1)), 0), dtype=bool)
    n_lines = np.maximum(np.diff(split.offsets) - trailing, 1)
    counts = [split.per_doc(mask) for mask in (bullet, ellipsis)]
    return np.stack([n_lines, *counts], axis=1)

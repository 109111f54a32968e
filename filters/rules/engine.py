"""Heuristic quality rules of the Gopher, C4 and FineWeb recipes, evaluated a batch of documents at a time.

Why this module exists: DataTrove's reference filters run about 0.2 MB/s per core because they tokenize
every document with spaCy and build a Python string for every n-gram. Here the same published rules run
on a chunk of documents at once, with numpy over the UTF-32 code points of the joined texts:

- Tokens: a character-class table and a few boolean masks find where spaCy's English tokenizer would
  split (see the tokenizer notes below); each token is then a 64-bit polynomial hash, its length and two
  class bits, all from cumulative sums. No Python object is made per token.
- N-grams: sums of token hashes times per-offset multipliers. Only n-grams that repeat can matter, and an
  n-gram repeats only where its (n-1)-gram prefix repeats, so each larger n is grouped (sorted in parts
  of ~250K keys) on the shrinking set of repeated positions.
- Long documents: the per-character work runs in ~1M-character windows cut at whitespace and everything
  kept is per token, so memory grows with a document by a small constant (see `curate bench memory`).
- Lines: plain Python `str` methods, as lines are ~20x fewer than tokens.

Decisions match DataTrove's (same definitions, tokens within a few exceptions of spaCy's) except for
documents sitting right at a threshold; the tests measure the agreement on real documents.

Text is never rewritten, because curate stages only add columns: C4's line removal is evaluated
virtually (the lines C4 would keep decide the sentence count, lorem ipsum and curly bracket checks).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curate.textwindows import WINDOW_CHARS, release_free_memory
from filters.rules.badwords import BadWordMatcher
from filters.rules.lines import (
    bullet_and_ellipsis_lines,
    c4_document_checks,
    fineweb_line_stats,
    paragraph_and_line_duplicates,
)
from filters.rules.ngrams import NgramRepetition
from filters.rules.settings import CHUNK_CHARS, EMPTY, RuleSet, _code
from filters.rules.words import HashSet, TokenTable, distinct_stop_words, hash_strings

SIGNAL_FIELDS: list[pa.Field] = [
    pa.field("rule_word_count", pa.int32()),
    pa.field("rule_mean_word_length", pa.float32()),
    pa.field("rule_alpha_word_frac", pa.float32()),
    pa.field("rule_dup_line_char_frac", pa.float32()),
    pa.field("rule_dup_ngram_char_frac", pa.float32()),
    pa.field("rule_line_punct_frac", pa.float32()),
    pa.field("rule_bad_word_count", pa.int32()),
]
"""Numeric signals kept for mixing; null when their family (or rule) is disabled."""


@dataclass
class RuleReport:
    """Per-document outcome: `failed[i, j]` is True when document i fails rule `codes[j]`."""

    codes: list[str]
    failed: np.ndarray
    signals: dict[str, np.ndarray]

    def flags(self) -> list[str]:
        """Comma-separated failed codes per document, '' when it passes every rule."""
        out = [""] * len(self.failed)
        for doc in np.flatnonzero(self.failed.any(axis=1)).tolist():
            out[doc] = ",".join(self.codes[j] for j in np.flatnonzero(self.failed[doc]).tolist())
        return out

    def first_failed(self) -> list[str | None]:
        """The drop reason of each document: its first failed code in evaluation order, else None."""
        out: list[str | None] = [None] * len(self.failed)
        for doc in np.flatnonzero(self.failed.any(axis=1)).tolist():
            out[doc] = self.codes[int(np.argmax(self.failed[doc]))]
        return out


class _Checks:
    """Collects (code, failed-array) in evaluation order while a chunk is evaluated."""

    def __init__(self) -> None:
        self.codes: list[str] = []
        self.failed: list[np.ndarray] = []

    def add(self, code: str, failed: np.ndarray) -> None:
        self.codes.append(code)
        self.failed.append(np.asarray(failed, dtype=bool))


class RuleEngine:
    """Evaluates a RuleSet on lists of texts. Build once per worker (it loads the bad-word list)."""

    def __init__(self, rules: RuleSet | None = None) -> None:
        self.rules = rules or RuleSet()
        c4 = self.rules.c4
        self.stop_words = HashSet(hash_strings(self.rules.gopher_quality.stop_words))
        self.bad_words = BadWordMatcher.from_file(c4.bad_words_file) if c4.enabled else None

    @property
    def codes(self) -> list[str]:
        """Every reason code this configuration can emit, in evaluation order."""
        return self._evaluate_chunk(["probe"]).codes

    def evaluate(self, texts: Sequence[str | None]) -> RuleReport:
        texts = [text or "" for text in texts]
        reports = [self._evaluate_chunk(texts[start:stop]) for start, stop in _chunks(texts, CHUNK_CHARS)]
        if not reports:
            reports = [self._evaluate_chunk([])]
        return RuleReport(
            codes=reports[0].codes,
            failed=np.concatenate([r.failed for r in reports]),
            signals={k: np.concatenate([r.signals[k] for r in reports]) for k in reports[0].signals},
        )

    def _evaluate_chunk(self, texts: list[str]) -> RuleReport:
        rules = self.rules
        n_chars = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        empty = np.fromiter((not t or t.isspace() for t in texts), dtype=bool, count=len(texts))
        needs_tokens = (
            rules.gopher_repetition.enabled
            or rules.gopher_quality.enabled
            or rules.fineweb.enabled
            or self.bad_words is not None
        )
        release = functools.partial(_release_after_long, n_chars)
        tokens = TokenTable.from_texts(texts) if needs_tokens else None
        release()
        checks = _Checks()
        checks.add(EMPTY, empty)
        signals = {f.name: np.full(len(texts), np.nan) for f in SIGNAL_FIELDS}
        if rules.gopher_repetition.enabled:
            self._gopher_repetition(texts, n_chars, tokens, checks, signals)
            release()
        # split after the n-gram walk, the peak of a long document, so the lines never add to it
        lines = [t.splitlines() for t in texts] if rules.gopher_quality.enabled or rules.c4.enabled else []
        if rules.gopher_quality.enabled:
            self._gopher_quality(texts, lines, tokens, checks, signals)
        if rules.c4.enabled:
            self._c4(texts, lines, tokens, checks, signals)
        del lines
        release()
        if rules.fineweb.enabled:
            self._fineweb(texts, tokens, checks, signals)
        failed = np.stack(checks.failed, axis=1) if texts else np.zeros((0, len(checks.codes)), dtype=bool)
        failed[empty, 1:] = False  # an empty document gets the one clear reason
        return RuleReport(codes=checks.codes, failed=failed, signals=signals)

    # -- families ------------------------------------------------------------------------------------------

    def _gopher_repetition(self, texts, n_chars, tokens, checks: _Checks, signals) -> None:
        rules, family = self.rules.gopher_repetition, "gopher_repetition"
        stats = np.array([paragraph_and_line_duplicates(t) for t in texts], dtype=np.float64).reshape(-1, 4)
        _release_after_long(n_chars)
        para_frac, para_chars, line_frac, line_chars = stats.T
        _max_rule(checks, _code(family, "dup_para_frac"), para_frac, rules.max_dup_para_frac)
        _max_rule(checks, _code(family, "dup_para_char_frac"), para_chars, rules.max_dup_para_char_frac)
        _max_rule(checks, _code(family, "dup_line_frac"), line_frac, rules.max_dup_line_frac)
        _max_rule(checks, _code(family, "dup_line_char_frac"), line_chars, rules.max_dup_line_char_frac)
        tops, dups = rules.max_top_ngram_char_frac, rules.max_dup_ngram_char_frac
        ngrams = NgramRepetition(tokens, n_chars).measure(list(tops), list(dups))
        for n, limit in tops.items():
            checks.add(_code(family, f"top_{n}gram_char_frac"), ngrams[("top", n)] > limit)
        for n, limit in dups.items():
            checks.add(_code(family, f"dup_{n}gram_char_frac"), ngrams[("dup", n)] > limit)
        signals["rule_dup_line_char_frac"] = line_chars
        if dups:
            signals["rule_dup_ngram_char_frac"] = ngrams[("dup", min(dups))]

    def _gopher_quality(self, texts, lines_of, tokens: TokenTable, checks: _Checks, signals) -> None:
        rules, family = self.rules.gopher_quality, "gopher_quality"
        n_tokens = np.maximum(tokens.counts, 1)
        n_words = tokens.per_doc_sum(tokens.is_word)
        mean_length = tokens.per_doc_sum(tokens.lengths * tokens.is_word) / np.maximum(n_words, 1)
        alpha_frac = tokens.per_doc_sum(tokens.has_letter) / n_tokens
        symbols = np.array([max(t.count("#"), t.count("...") + t.count("…")) for t in texts], dtype=np.int64)
        lines = np.array(
            [bullet_and_ellipsis_lines(t, ls) for t, ls in zip(texts, lines_of, strict=True)], dtype=np.int64
        ).reshape(-1, 3)

        checks.add(
            _code(family, "word_count"),
            _below(n_words, rules.min_words) | _above(n_words, rules.max_words),
        )
        checks.add(
            _code(family, "mean_word_length"),
            _below(mean_length, rules.min_mean_word_length) | _above(mean_length, rules.max_mean_word_length),
        )
        _max_rule(checks, _code(family, "symbol_word_ratio"), symbols / n_tokens, rules.max_symbol_word_ratio)
        _max_rule(
            checks, _code(family, "bullet_lines"), lines[:, 1] / lines[:, 0], rules.max_bullet_lines_ratio
        )
        _max_rule(
            checks, _code(family, "ellipsis_lines"), lines[:, 2] / lines[:, 0], rules.max_ellipsis_lines_ratio
        )
        _min_rule(checks, _code(family, "alpha_words"), alpha_frac, rules.min_alpha_words_ratio)
        if rules.min_stop_words is not None:
            distinct = distinct_stop_words(tokens, self.stop_words)
            checks.add(_code(family, "stop_words"), distinct < rules.min_stop_words)
        signals["rule_word_count"] = n_words
        signals["rule_mean_word_length"] = mean_length
        signals["rule_alpha_word_frac"] = alpha_frac

    def _c4(self, texts, lines_of, tokens, checks: _Checks, signals) -> None:
        rules, family = self.rules.c4, "c4"
        results = [c4_document_checks(t, rules, ls) for t, ls in zip(texts, lines_of, strict=True)]
        lorem = np.array([r[0] for r in results], dtype=bool)
        curly = np.array([r[1] for r in results], dtype=bool)
        sentences = np.array([r[2] for r in results], dtype=np.int64)
        if rules.reject_lorem_ipsum:
            checks.add(_code(family, "lorem_ipsum"), lorem)
        if rules.reject_curly_bracket:
            checks.add(_code(family, "curly_bracket"), curly)
        if rules.min_sentences is not None:
            checks.add(_code(family, "too_few_sentences"), sentences < rules.min_sentences)
        if self.bad_words is not None:
            bad = self.bad_words.count(texts, tokens)
            if rules.reject_bad_words:
                checks.add(_code(family, "bad_words"), bad > 0)
            signals["rule_bad_word_count"] = bad

    def _fineweb(self, texts, tokens: TokenTable, checks: _Checks, signals) -> None:
        rules, family = self.rules.fineweb, "fineweb"
        stats = np.array(
            [fineweb_line_stats(t, rules.short_line_length) for t in texts], dtype=np.float64
        ).reshape(-1, 4)
        n_lines, punctuated, short, dup_chars = stats.T
        lines = np.maximum(n_lines, 1)
        punct_ratio = punctuated / lines
        if rules.min_line_punct_ratio is not None:
            low = punct_ratio < rules.min_line_punct_ratio
            if rules.line_punct_exclude_zero:
                low &= punct_ratio > 0
            checks.add(_code(family, "line_punct_ratio"), low | (n_lines == 0))
        _max_rule(checks, _code(family, "short_line_ratio"), short / lines, rules.max_short_line_ratio)
        newlines = np.array([t.count("\n") for t in texts], dtype=np.float64)
        visible_chars = np.maximum(np.fromiter(map(len, texts), np.float64, len(texts)) - newlines, 1)
        _max_rule(
            checks, _code(family, "char_dup_ratio"), dup_chars / visible_chars, rules.max_char_dup_ratio
        )
        _max_rule(
            checks,
            _code(family, "newline_ratio"),
            newlines / np.maximum(tokens.counts, 1),
            rules.max_newline_ratio,
        )
        signals["rule_line_punct_frac"] = punct_ratio


def _release_after_long(n_chars: np.ndarray) -> None:
    """A long document's steps free hundreds of MB of temporaries that the C heap would keep resident
    under the next step's peak: between steps they are given back (a chunk of short texts skips it)."""
    if int(n_chars.sum()) > WINDOW_CHARS:
        release_free_memory()


def _below(values: np.ndarray, limit: float | None) -> np.ndarray:
    return values < limit if limit is not None else np.zeros(len(values), dtype=bool)


def _above(values: np.ndarray, limit: float | None) -> np.ndarray:
    return values > limit if limit is not None else np.zeros(len(values), dtype=bool)


def _max_rule(checks: _Checks, code: str, values: np.ndarray, limit: float | None) -> None:
    if limit is not None:
        checks.add(code, values > limit)


def _min_rule(checks: _Checks, code: str, values: np.ndarray, limit: float | None) -> None:
    if limit is not None:
        checks.add(code, values < limit)


def _chunks(texts: Sequence[str], max_chars: int) -> list[tuple[int, int]]:
    """Consecutive [start, stop) ranges of about max_chars characters (a long document gets its own)."""
    ranges, start, size = [], 0, 0
    for i, text in enumerate(texts):
        if size and size + len(text) > max_chars:
            ranges.append((start, i))
            start, size = i, 0
        size += len(text)
    if start < len(texts):
        ranges.append((start, len(texts)))
    return ranges

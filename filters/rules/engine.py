"""Heuristic quality rules of the Gopher, C4 and FineWeb recipes, evaluated a batch of documents at a time.

Why this module exists: DataTrove's reference filters run about 0.2 MB/s per core because they tokenize
every document with spaCy and build a Python string for every n-gram. Here the same published rules run
on a chunk of documents at once, over the UTF-32 code points of the joined texts, in numpy and in
compiled loops (numba, built once per worker in the stage's setup):

- Tokens: a character-class table and one pass per chunk of visible characters find where spaCy's
  English tokenizer would split (see `tokenizer`); each token is then a 64-bit polynomial hash, its
  length and two class bits. No Python object is made per token.
- N-grams: sums of token hashes times per-offset multipliers. Only n-grams that repeat can matter, and an
  n-gram repeats only where its (n-1)-gram prefix repeats, so each larger n is grouped (a hash table per
  document, in parts of ~250K keys for a long one) on the shrinking set of repeated positions.
- Long documents: the per-character work runs in ~1M-character windows cut at whitespace and everything
  kept is per token, so memory grows with a document by a small constant (see `curate bench memory`).
- Lines: split once per chunk into Arrow arrays, each rule a compute kernel over all lines (`lines`).

Decisions match DataTrove's (same definitions, tokens within a few exceptions of spaCy's) except for
documents sitting right at a threshold; the tests measure the agreement on real documents.

Languages (see `languages`): documents are reordered so that each language's are contiguous, documents
of unspaced scripts in chunks of their own (their letters are words); per-language lists (stop words, bad
words) then run once per language run of a chunk, never per document. Without a language, or with English
only, the order is kept and every rule is exactly the English one.

Text is never rewritten, because curate stages only add columns: C4's line removal is evaluated
virtually (the lines C4 would keep decide the sentence count, lorem ipsum and curly bracket checks).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from curate.textwindows import WINDOW_CHARS, release_free_memory
from filters.rules.badwords import BadWordMatcher, SubstringBadWords
from filters.rules.languages import (
    ENGLISH,
    SUBSTRING_BAD_WORDS,
    LanguageRun,
    group_by_language,
    ldnoobw_words,
    package_stop_words,
    runs_within,
)
from filters.rules.lines import LineStats, measure_lines
from filters.rules.ngrams import NgramRepetition
from filters.rules.report import SIGNAL_FIELDS, Checks, RuleReport
from filters.rules.settings import (
    CHUNK_CHARS,
    EMPTY,
    RuleSet,
    _code,
)
from filters.rules.words import HashSet, TokenTable, distinct_stop_words, hash_strings


class RuleEngine:
    """Evaluates a RuleSet on lists of texts. Build once per worker (it loads the bad-word list)."""

    def __init__(self, rules: RuleSet | None = None) -> None:
        self.rules = rules or RuleSet()
        c4 = self.rules.c4
        self.stop_words = HashSet(hash_strings(self.rules.gopher_quality.stop_words))
        self.bad_words = BadWordMatcher.from_file(c4.bad_words_file) if c4.enabled else None
        self._stop_word_sets: dict[str, HashSet | None] = {ENGLISH: self.stop_words}
        self._bad_word_matchers: dict[str, BadWordMatcher | SubstringBadWords | None] = {
            ENGLISH: self.bad_words
        }

    @property
    def codes(self) -> list[str]:
        """Every reason code this configuration can emit, in evaluation order."""
        return self._evaluate_chunk(["probe"]).codes

    def evaluate(
        self,
        texts: Sequence[str | None],
        langs: pa.Array | pa.ChunkedArray | Sequence[str | None] | None = None,
    ) -> RuleReport:
        """Every rule on every text; `langs` (lid.176 codes, None = English) picks the words, stop words,
        bad words and line punctuation of each document's language."""
        texts = [text or "" for text in texts]
        order, runs = group_by_language(langs, len(texts))
        if order is not None:
            texts = [texts[i] for i in order.tolist()]
        reports = []
        for family in _families(runs):
            low, high = family[0].start, family[-1].stop
            for start, stop in _chunks(texts[low:high], CHUNK_CHARS):
                chunk_runs = runs_within(family, low + start, low + stop)
                reports.append(self._evaluate_chunk(texts[low + start : low + stop], chunk_runs))
        if not reports:
            reports = [self._evaluate_chunk([])]
        return RuleReport.concatenate(reports).in_original_order(order)

    def _evaluate_chunk(self, texts: list[str], runs: list[LanguageRun] | None = None) -> RuleReport:
        """The rules on documents of one script family; `runs`: their language runs (default: English),
        which share one letters-per-word value (1 for spaced scripts)."""
        runs = runs if runs is not None else [LanguageRun(ENGLISH, 0, len(texts))]
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
        # lines first: their arrays are freed before the tokens and the n-gram walk reach their peak
        lines = measure_lines(texts, rules, runs)
        release()
        with_runs = needs_tokens and self._word_runs_with_tokens(runs, n_chars)
        tokens = TokenTable.from_texts(texts, runs[0].unspaced, with_runs) if needs_tokens else None
        release()
        checks = Checks(len(texts))
        checks.add(EMPTY, empty)
        signals = {f.name: np.full(len(texts), np.nan) for f in SIGNAL_FIELDS}
        if rules.gopher_repetition.enabled:
            self._gopher_repetition(n_chars, lines, tokens, runs, checks, signals)
            release()
        if rules.gopher_quality.enabled:
            self._gopher_quality(texts, lines, tokens, runs, checks, signals)
        if rules.c4.enabled:
            self._c4(texts, lines, tokens, runs, checks, signals)
        if rules.fineweb.enabled:
            self._fineweb(texts, lines, tokens, checks, signals)
        failed = np.stack(checks.failed, axis=1) if texts else np.zeros((0, len(checks.codes)), dtype=bool)
        failed[empty, 1:] = False  # an empty document gets the one clear reason
        return RuleReport(codes=checks.codes, failed=failed, signals=signals, skipped=checks.skipped)

    # -- families ------------------------------------------------------------------------------------------

    def _gopher_repetition(self, n_chars, lines: LineStats, tokens, runs, checks: Checks, signals) -> None:
        rules, family = self.rules.gopher_repetition, "gopher_repetition"
        para_frac, para_chars, line_frac, line_chars = lines.duplicates.T
        checks.at_most(_code(family, "dup_para_frac"), para_frac, rules.max_dup_para_frac)
        checks.at_most(_code(family, "dup_para_char_frac"), para_chars, rules.max_dup_para_char_frac)
        checks.at_most(_code(family, "dup_line_frac"), line_frac, rules.max_dup_line_frac)
        checks.at_most(_code(family, "dup_line_char_frac"), line_chars, rules.max_dup_line_char_frac)
        tops, dups = rules.max_top_ngram_char_frac, rules.max_dup_ngram_char_frac
        size = functools.partial(_ngram_tokens, chars_per_word=runs[0].chars_per_word)
        ngrams = NgramRepetition(tokens, n_chars).measure(list(map(size, tops)), list(map(size, dups)))
        for n, limit in tops.items():
            checks.add(_code(family, f"top_{n}gram_char_frac"), ngrams[("top", size(n))] > limit)
        for n, limit in dups.items():
            checks.add(_code(family, f"dup_{n}gram_char_frac"), ngrams[("dup", size(n))] > limit)
        signals["rule_dup_line_char_frac"] = line_chars
        if dups:
            signals["rule_dup_ngram_char_frac"] = ngrams[("dup", size(min(dups)))]

    def _gopher_quality(self, texts, line_stats: LineStats, tokens, runs, checks: Checks, signals) -> None:
        rules, family = self.rules.gopher_quality, "gopher_quality"
        n_tokens = np.maximum(tokens.counts, 1)
        chars_per_word = runs[0].chars_per_word
        n_words, mean_length = _words_and_mean_length(tokens, chars_per_word)
        alpha_frac = tokens.per_doc_sum(tokens.has_letter) / n_tokens
        symbols = np.array([max(t.count("#"), t.count("...") + t.count("…")) for t in texts], dtype=np.int64)
        lines = line_stats.bullets

        checks.outside(_code(family, "word_count"), n_words, rules.min_words, rules.max_words)
        checks.outside(
            _code(family, "mean_word_length"),
            mean_length,
            rules.min_mean_word_length,
            rules.max_mean_word_length,
        )
        if chars_per_word != 1.0 and (rules.min_mean_word_length, rules.max_mean_word_length) != (None, None):
            checks.skip(_code(family, "mean_word_length"))
        checks.at_most(_code(family, "symbol_word_ratio"), symbols / n_tokens, rules.max_symbol_word_ratio)
        checks.at_most(_code(family, "bullet_lines"), lines[:, 1] / lines[:, 0], rules.max_bullet_lines_ratio)
        checks.at_most(
            _code(family, "ellipsis_lines"), lines[:, 2] / lines[:, 0], rules.max_ellipsis_lines_ratio
        )
        checks.at_least(_code(family, "alpha_words"), alpha_frac, rules.min_alpha_words_ratio)
        if rules.min_stop_words is not None:
            code, too_few = _code(family, "stop_words"), np.zeros(len(texts), dtype=bool)
            for run in runs:
                stop_words = self._stop_words(run.lang)
                if stop_words is None:
                    checks.skip(code, run.docs)
                    continue
                distinct = distinct_stop_words(tokens, stop_words, run.start, run.stop)
                too_few[run.docs] = distinct < rules.min_stop_words
            checks.add(code, too_few)
        signals["rule_word_count"] = n_words
        signals["rule_mean_word_length"] = mean_length
        signals["rule_alpha_word_frac"] = alpha_frac

    def _c4(self, texts, lines: LineStats, tokens, runs, checks: Checks, signals) -> None:
        rules, family = self.rules.c4, "c4"
        if rules.reject_lorem_ipsum:
            checks.add(_code(family, "lorem_ipsum"), lines.lorem)
        if rules.reject_curly_bracket:
            checks.add(_code(family, "curly_bracket"), lines.curly)
        if rules.min_sentences is not None:
            checks.add(_code(family, "too_few_sentences"), lines.few_sentences)
        if self.bad_words is not None:
            code, bad = _code(family, "bad_words"), np.full(len(texts), np.nan)
            for run in runs:
                matcher = self._bad_words(run.lang)
                if matcher is None:
                    checks.skip(code, run.docs)
                else:
                    bad[run.docs] = matcher.count(texts, tokens, run.start, run.stop)
            if rules.reject_bad_words:
                checks.add(code, bad > 0)
            signals["rule_bad_word_count"] = bad

    # -- per-language lists, loaded on a language's first document ----------------------------------------

    def _stop_words(self, lang: str) -> HashSet | None:
        if lang not in self._stop_word_sets:
            words = package_stop_words(lang)
            self._stop_word_sets[lang] = HashSet(hash_strings(words)) if words else None
        return self._stop_word_sets[lang]

    def _word_runs_with_tokens(self, runs: list[LanguageRun], n_chars: np.ndarray) -> bool:
        """Whether to find C4's word runs in the tokens' pass over the code points: when some run's bad
        words are matched on them, unless the chunk is one long document (its word runs are found later,
        so they are not held during the n-gram walk, its memory peak)."""
        if self.bad_words is None or int(n_chars.sum()) > WINDOW_CHARS:
            return False
        matchers = [self._bad_words(run.lang) for run in runs]
        return any(isinstance(matcher, BadWordMatcher) for matcher in matchers)

    def _bad_words(self, lang: str) -> BadWordMatcher | SubstringBadWords | None:
        if lang not in self._bad_word_matchers:
            folder = self.rules.c4.bad_words_dir
            words = ldnoobw_words(folder, lang) if folder is not None else None
            kind = SubstringBadWords if lang in SUBSTRING_BAD_WORDS else BadWordMatcher
            self._bad_word_matchers[lang] = kind(words) if words else None
        return self._bad_word_matchers[lang]

    def _fineweb(self, texts, lines: LineStats, tokens: TokenTable, checks: Checks, signals) -> None:
        rules, family = self.rules.fineweb, "fineweb"
        n_lines, punctuated, short, dup_chars = lines.fineweb.T
        lines = np.maximum(n_lines, 1)
        punct_ratio = punctuated / lines
        if rules.min_line_punct_ratio is not None:
            low = punct_ratio < rules.min_line_punct_ratio
            if rules.line_punct_exclude_zero:
                low &= punct_ratio > 0
            checks.add(_code(family, "line_punct_ratio"), low | (n_lines == 0))
        checks.at_most(_code(family, "short_line_ratio"), short / lines, rules.max_short_line_ratio)
        newlines = np.array([t.count("\n") for t in texts], dtype=np.float64)
        visible_chars = np.maximum(np.fromiter(map(len, texts), np.float64, len(texts)) - newlines, 1)
        checks.at_most(_code(family, "char_dup_ratio"), dup_chars / visible_chars, rules.max_char_dup_ratio)
        checks.at_most(
            _code(family, "newline_ratio"),
            newlines / np.maximum(tokens.counts, 1),
            rules.max_newline_ratio,
        )
        signals["rule_line_punct_frac"] = punct_ratio


def _families(runs: list[LanguageRun]) -> list[list[LanguageRun]]:
    """Consecutive runs that tokenize and count words alike: spaced languages, then each letters-per-word
    value of the unspaced ones (group_by_language orders them so)."""
    families: list[list[LanguageRun]] = []
    for run in runs:
        if families and families[-1][0].chars_per_word == run.chars_per_word:
            families[-1].append(run)
        else:
            families.append([run])
    return families


def _words_and_mean_length(tokens: TokenTable, chars_per_word: float) -> tuple[np.ndarray, np.ndarray]:
    """(words, mean word length) per document: word tokens and their mean length, or for an unspaced
    script letters / k words and no mean length (NaN: a letter's length says nothing of words)."""
    n_words = tokens.per_doc_sum(tokens.is_word)
    if chars_per_word != 1.0:
        return np.rint(n_words / chars_per_word).astype(np.int64), np.full(tokens.n_docs, np.nan)
    return n_words, tokens.per_doc_sum(tokens.lengths * tokens.is_word) / np.maximum(n_words, 1)


def _ngram_tokens(n: int, chars_per_word: float) -> int:
    """Tokens in Gopher's n-word n-gram: n, or round(n * k) letters of an unspaced script (at most 32,
    the longest n-gram NgramRepetition hashes)."""
    return n if chars_per_word == 1.0 else max(2, min(32, round(n * chars_per_word)))


def _release_after_long(n_chars: np.ndarray) -> None:
    """A long document's steps free hundreds of MB of temporaries that the C heap (and Arrow's pool, for
    the line arrays) would keep resident under the next step's peak: between steps they are given back
    (a chunk of short texts skips it)."""
    if int(n_chars.sum()) > WINDOW_CHARS:
        pa.default_memory_pool().release_unused()
        release_free_memory()


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

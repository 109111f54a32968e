"""The straightforward per-document line rules, kept as the oracle of the vectorised ones in
`filters.rules.lines` and `filters.rules.c4lines` (they were the product code up to 4d1e65d).

`reference_line_stats` returns the same `LineStats` as `filters.rules.lines.measure_lines`, one
document at a time with plain `str` methods, so the tests can compare every field, and can run the whole
stage with it swapped in to compare every output column.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from filters.rules.badwords import lowered_windows
from filters.rules.c4lines import count_sentences
from filters.rules.languages import ENGLISH, LanguageRun
from filters.rules.lines import LineStats, short_line_length
from filters.rules.settings import (
    _CITATION_RE,
    _PARAGRAPH_SPLIT_RE,
    BULLETS,
    C4_END_PUNCTUATION,
    C4_POLICY_SUBSTRINGS,
    ELLIPSES,
    MULTILINGUAL_END_PUNCTUATION,
    TERMINAL_PUNCTUATION,
    C4Rules,
    RuleSet,
)


def reference_line_stats(texts: Sequence[str], rules: RuleSet, runs: list[LanguageRun]) -> LineStats:
    """Every line statistic of `measure_lines`, document by document."""
    n = len(texts)
    stats = LineStats()
    if rules.gopher_repetition.enabled:
        duplicates = [paragraph_and_line_duplicates(t) for t in texts]
        stats.duplicates = np.array(duplicates, np.float64).reshape(n, 4)
    if rules.gopher_quality.enabled:
        lines = [bullet_and_ellipsis_lines(t, t.splitlines()) for t in texts]
        stats.bullets = np.array(lines, dtype=np.int64).reshape(n, 3)
    if rules.c4.enabled:
        results = []
        for run in runs:
            punctuation = C4_END_PUNCTUATION if run.lang == ENGLISH else MULTILINGUAL_END_PUNCTUATION
            results += [
                c4_document_checks(t, rules.c4, None, punctuation, run.unspaced) for t in texts[run.docs]
            ]
        stats.lorem = np.array([r[0] for r in results], dtype=bool)
        stats.curly = np.array([r[1] for r in results], dtype=bool)
        need = rules.c4.min_sentences or 0
        stats.few_sentences = np.array([r[2] < need for r in results], dtype=bool)
    if rules.fineweb.enabled:
        short = short_line_length(rules.fineweb.short_line_length, runs[0].chars_per_word)
        stats.fineweb = np.array([fineweb_line_stats(t, short) for t in texts], np.float64).reshape(n, 4)
    return stats


def duplicate_stats(parts: list[str]) -> tuple[int, int]:
    """(elements equal to an earlier one, their characters): Gopher's duplicate counting via one set."""
    unique = set(parts)
    if len(unique) == len(parts):
        return 0, 0
    return len(parts) - len(unique), sum(map(len, parts)) - sum(map(len, unique))


def paragraph_and_line_duplicates(text: str) -> tuple[float, float, float, float]:
    """Gopher repetition on paragraphs ('\\n\\n+') and lines ('\\n+'): element and char fractions."""
    n_chars = max(len(text), 1)
    para_frac = para_chars = 0.0
    stripped = text.strip()
    if "\n\n" in stripped:
        paragraphs = _PARAGRAPH_SPLIT_RE.split(stripped)
        duplicates, chars = duplicate_stats(paragraphs)
        para_frac, para_chars = duplicates / len(paragraphs), chars / n_chars
    lines = re.split("\n+", text)
    duplicates, chars = duplicate_stats(lines)
    return para_frac, para_chars, duplicates / len(lines), chars / n_chars


def bullet_and_ellipsis_lines(text: str, lines: list[str]) -> tuple[int, int, int]:
    """(lines, lines starting with a bullet, lines ending in an ellipsis); lines = text.splitlines()."""
    bullets = sum(1 for line in lines if line.lstrip().startswith(BULLETS))
    ellipsis = sum(1 for line in lines if line.rstrip().endswith(ELLIPSES))
    return max(len(lines), 1), bullets, ellipsis


def fineweb_line_stats(text: str, short_line_length: int) -> tuple[int, int, int, int]:
    """(non-blank lines, lines ending in terminal punctuation, short lines, chars in repeated lines)."""
    lines = [line for line in text.split("\n") if line and not line.isspace()]
    if not lines:
        return 0, 0, 0, 0
    punctuated = sum(1 for line in lines if line[-1] in TERMINAL_PUNCTUATION)
    short = sum(1 for line in lines if len(line) <= short_line_length)
    return len(lines), punctuated, short, duplicate_stats(lines)[1]


def c4_document_checks(
    text: str,
    rules: C4Rules,
    lines: list[str] | None = None,
    end_punctuation: tuple[str, ...] = C4_END_PUNCTUATION,
    char_words: bool = False,
) -> tuple[bool, bool, int]:
    """(has lorem ipsum, has a curly bracket, sentences in the lines C4 keeps), in DataTrove's line order,
    every line counted (no early stop)."""
    present = _lowered_substrings(text, ("lorem ipsum", "javascript", *C4_POLICY_SUBSTRINGS))
    may_lorem = rules.reject_lorem_ipsum and "lorem ipsum" in present
    may_curly = rules.reject_curly_bracket and "{" in text
    may_javascript = rules.drop_javascript_lines and "javascript" in present
    may_policy = rules.drop_policy_lines and any(p in present for p in C4_POLICY_SUBSTRINGS)
    has_lorem = has_curly = False
    sentences = 0
    limit = rules.max_word_length
    for raw in text.splitlines() if lines is None else lines:
        line = raw.strip()
        if not line or (limit and not char_words and any(len(word) > limit for word in line.split())):
            continue
        if rules.remove_citations and "[" in line:
            line = _CITATION_RE.sub("", line)
        if rules.require_terminal_punct and (not line.endswith(end_punctuation) or line.endswith("...")):
            continue
        if rules.min_words_per_line and _line_words(raw, char_words) < rules.min_words_per_line:
            continue
        lowered_line = line.lower()
        has_lorem = has_lorem or (may_lorem and "lorem ipsum" in lowered_line)
        if may_javascript and "javascript" in lowered_line:
            continue
        has_curly = has_curly or (may_curly and "{" in line)
        if may_policy and any(p in lowered_line for p in C4_POLICY_SUBSTRINGS):
            continue
        sentences += count_sentences(line)
    return has_lorem, has_curly, sentences


def _line_words(line: str, char_words: bool) -> int:
    parts = line.split()
    return sum(map(len, parts)) if char_words else len(parts)


def _lowered_substrings(text: str, needles: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for segment, _ in lowered_windows(text, max(map(len, needles))):
        found.update(needle for needle in needles if needle in segment)
    return found


def reference_repeated_groups(keys: Sequence[int]) -> list[int]:
    """Counter's numbering of the keys seen at least twice, in order of first appearance; -1 otherwise."""
    counts = Counter(keys)
    numbers: dict[int, int] = {}
    return [numbers.setdefault(key, len(numbers)) if counts[key] >= 2 else -1 for key in keys]


def assert_same_result(got, expected) -> None:
    """Two StageResults of the heuristics stage hold the same table, stats and drop reasons."""
    assert got.table.equals(expected.table)
    assert got.stats == expected.stats
    assert (got.drop_reason is None) == (expected.drop_reason is None)
    if expected.drop_reason is not None:
        assert got.drop_reason.equals(expected.drop_reason)

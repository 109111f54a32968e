"""C4's line removal, evaluated virtually over every line of a chunk with Arrow kernels.

C4 removes lines that are empty, hold a word over `max_word_length`, do not end in terminal punctuation,
have fewer than `min_words_per_line` words, mention javascript or a policy; the lines it keeps decide
lorem ipsum, curly brackets and the sentence count. Text is never rewritten here: each step narrows the
indices of the surviving lines. Python only sees the rare lines a step cannot decide in bulk: long
lines, lines with '[' (citations), lines that may mention lorem ipsum, javascript or a policy (a
case-insensitive regex finds a superset, `str.lower` confirms), and the sentences of documents keeping
fewer lines than `min_sentences` (a kept line is at least one sentence).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.rules.badwords import lowered_windows
from filters.rules.charclasses import _DOT_SPLITS_AFTER
from filters.rules.languages import ENGLISH, LanguageRun
from filters.rules.settings import (
    _ABBREVIATIONS,
    _CITATION_RE,
    _OPENERS,
    _TERMINATOR_RUN_RE,
    _WORD_FOLLOWS_RE,
    C4_END_PUNCTUATION,
    C4_POLICY_SUBSTRINGS,
    MULTILINGUAL_END_PUNCTUATION,
    WHITESPACE,
    C4Rules,
)
from filters.rules.strings import LineSplit, at_least_words, ends_with_char

LOREM, JAVASCRIPT = "lorem ipsum", "javascript"
NEEDLES = (LOREM, JAVASCRIPT, *C4_POLICY_SUBSTRINGS)


def c4_line_checks(
    texts: Sequence[str], split: LineSplit, rules: C4Rules, runs: list[LanguageRun]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(has lorem ipsum, has a curly bracket, fewer than min_sentences) per document, from the lines C4
    keeps of `split` (the documents' `str.splitlines()`). Outside English a kept line may end in any
    script's terminal punctuation; in an unspaced language a line's words are its visible characters."""
    english, unspaced = np.zeros(split.n_docs, bool), np.zeros(split.n_docs, bool)
    for run in runs:
        english[run.docs], unspaced[run.docs] = run.lang == ENGLISH, run.unspaced
    lines = pc.utf8_trim(split.lines, characters=WHITESPACE)
    index = np.flatnonzero(np.asarray(pc.binary_length(lines), dtype=np.int64) > 0)
    lines = lines.take(index)
    if rules.max_word_length:
        keep = ~_has_long_word(lines, rules.max_word_length, unspaced[split.docs[index]])
        index, lines = index[keep], lines.filter(pa.array(keep))
    if rules.remove_citations:
        brackets = np.fromiter(("[" in text for text in texts), dtype=bool, count=len(texts))
        lines = _without_citations(lines, np.flatnonzero(brackets[split.docs[index]]))
    if rules.require_terminal_punct:
        keep = _ends_a_sentence(lines, english[split.docs[index]])
        index, lines = index[keep], lines.filter(pa.array(keep))
    if rules.min_words_per_line:
        raw = split.lines.take(index)
        keep = at_least_words(raw, rules.min_words_per_line, unspaced[split.docs[index]])
        index, lines = index[keep], lines.filter(pa.array(keep))
    docs = split.docs[index]
    lorem, javascript, policy = _mentions(texts, lines, docs, rules)
    curly = np.asarray(pc.match_substring(lines, "{"), dtype=bool) & ~javascript & rules.reject_curly_bracket
    kept = ~javascript & ~policy
    few = _few_sentences(lines, docs, kept, split.n_docs, rules.min_sentences or 0)
    return _any_per_doc(docs, lorem, split.n_docs), _any_per_doc(docs, curly, split.n_docs), few


def _any_per_doc(docs: np.ndarray, values: np.ndarray, n_docs: int) -> np.ndarray:
    return np.bincount(docs[values], minlength=n_docs) > 0


def _has_long_word(lines: pa.Array, limit: int, char_words: np.ndarray) -> np.ndarray:
    """Lines holding a whitespace-separated word longer than `limit` (never in an unspaced language)."""
    out = np.zeros(len(lines), dtype=bool)
    for i in np.flatnonzero((np.asarray(pc.binary_length(lines)) > limit) & ~char_words).tolist():
        line = lines[i].as_py()
        out[i] = len(line) > limit and any(len(word) > limit for word in line.split())
    return out


def _without_citations(lines: pa.Array, maybe: np.ndarray) -> pa.Array:
    """C4's citation markers ([1], [edit], [citation needed]) removed by Python's regex (its \\d is
    Unicode's) from the lines holding a '[', looked for among the lines `maybe` (of texts with one)."""
    if not len(maybe):
        return lines
    mask = np.zeros(len(lines), dtype=bool)
    mask[maybe] = np.asarray(pc.match_substring(lines.take(maybe), "["), dtype=bool)
    replaced = [_CITATION_RE.sub("", line) for line in lines.filter(mask).to_pylist()]
    return pc.replace_with_mask(lines, pa.array(mask), pa.array(replaced, lines.type))


def _ends_a_sentence(lines: pa.Array, english: np.ndarray) -> np.ndarray:
    """Ends in terminal punctuation (C4's tuple in English, any script's elsewhere), but not in '...'."""
    ok = ends_with_char(lines, C4_END_PUNCTUATION)
    if not english.all():
        ok = np.where(english, ok, ends_with_char(lines, MULTILINGUAL_END_PUNCTUATION))
    return ok & ~np.asarray(pc.ends_with(lines, "..."), dtype=bool)


def _mentions(
    texts: Sequence[str], lines: pa.Array, docs: np.ndarray, rules: C4Rules
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lorem ipsum, javascript, policy) per line, as C4 checks them in `line.lower()` of documents whose
    `text.lower()` holds them, for the rules that are on."""
    out = [np.zeros(len(lines), dtype=bool) for _ in range(3)]
    wanted = [rules.reject_lorem_ipsum, rules.drop_javascript_lines, rules.drop_policy_lines]
    needles = [LOREM] * wanted[0] + [JAVASCRIPT] * wanted[1] + list(C4_POLICY_SUBSTRINGS) * wanted[2]
    if not needles:
        return tuple(out)
    maybe = pc.match_substring_regex(lines, "(?i)" + "|".join(map(re.escape, needles)))
    present: dict[int, set[str]] = {}
    for i in np.flatnonzero(np.asarray(maybe, dtype=bool)).tolist():
        doc = int(docs[i])
        if doc not in present:
            present[doc] = _lowered_substrings(texts[doc], NEEDLES)
        lowered, found = lines[i].as_py().lower(), present[doc]
        out[0][i] = wanted[0] and LOREM in found and LOREM in lowered
        out[1][i] = wanted[1] and JAVASCRIPT in found and JAVASCRIPT in lowered
        may_policy = any(p in found for p in C4_POLICY_SUBSTRINGS)
        out[2][i] = wanted[2] and may_policy and any(p in lowered for p in C4_POLICY_SUBSTRINGS)
    return tuple(out)


def _few_sentences(lines: pa.Array, docs: np.ndarray, kept: np.ndarray, n_docs: int, need: int) -> np.ndarray:
    """Documents whose kept lines hold fewer than `need` sentences: only those keeping fewer than `need`
    lines can, and only their lines are counted."""
    few = np.bincount(docs[kept], minlength=n_docs) < need
    if not few.any():
        return few
    chosen = np.flatnonzero(kept & few[docs])
    sentences = np.zeros(n_docs, dtype=np.int64)
    for doc, line in zip(docs[chosen].tolist(), lines.take(chosen).to_pylist(), strict=True):
        sentences[doc] += count_sentences(line)
    return few & (sentences < need)


def _lowered_substrings(text: str, needles: Sequence[str]) -> set[str]:
    """The needles found in text.lower(), window by window (see lowered_windows)."""
    found: set[str] = set()
    for segment, _ in lowered_windows(text, max(map(len, needles))):
        found.update(needle for needle in needles if needle in segment)
    return found


def count_sentences(line: str) -> int:
    """Sentences in a line as spaCy's sentencizer counts them: a new one starts at the first word after
    a terminator token ('.', '!', '?', ...). A non-empty line is at least one sentence."""
    sentences = 1
    for match in _TERMINATOR_RUN_RE.finditer(line):
        start, end = match.span()
        if _is_terminator_token(line, start, end) and _WORD_FOLLOWS_RE.match(line, end):
            sentences += 1
    return sentences


def _is_terminator_token(line: str, start: int, end: int) -> bool:
    """Whether the run line[start:end] holds a token that ends a sentence, as spaCy would split it.

    '..' and '…' are not terminators; a single '.' is one only where the tokenizer splits it off:
    'end.', 'end.Next', '4.' but not '3.5', 'U.S.', 'e.g.', 'Mr.'.
    """
    run = line[start:end]
    if run.strip("."):
        return True  # ! ? or another script's terminator
    if len(run) > 1:
        return False
    before = line[start - 1] if start else ""
    after = line[end] if end < len(line) else ""
    if after.isalnum():
        return before.islower() and after.isupper()
    if before.isalpha():
        word = line[line.rfind(" ", 0, start) + 1 : start].lstrip(_OPENERS)
        if word in _ABBREVIATIONS:
            return False
    if before.islower() or before.isdigit() or before in _DOT_SPLITS_AFTER:
        return True
    return before.isupper() and start >= 2 and line[start - 2].isupper()

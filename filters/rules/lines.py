"""Line and paragraph rules in plain Python (lines are ~20x fewer than tokens): duplicate lines and
paragraphs, bullets and ellipses, FineWeb's line statistics, and C4's virtual line removal."""

from __future__ import annotations

from collections.abc import Sequence

from filters.rules.badwords import lowered_windows
from filters.rules.settings import (
    _ABBREVIATIONS,
    _CITATION_RE,
    _OPENERS,
    _PARAGRAPH_SPLIT_RE,
    _TERMINATOR_RUN_RE,
    _WORD_FOLLOWS_RE,
    BULLETS,
    C4_END_PUNCTUATION,
    C4_POLICY_SUBSTRINGS,
    ELLIPSES,
    TERMINAL_PUNCTUATION,
    C4Rules,
)
from filters.rules.words import _DOT_SPLITS_AFTER


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
        # str.split is ~5x faster than the regex and identical when no run of 3+ newlines exists
        paragraphs = (
            stripped.split("\n\n") if "\n\n\n" not in stripped else _PARAGRAPH_SPLIT_RE.split(stripped)
        )
        duplicates, chars = duplicate_stats(paragraphs)
        para_frac, para_chars = duplicates / len(paragraphs), chars / n_chars
    n_lines, duplicates, chars = _line_duplicates(text)
    return para_frac, para_chars, duplicates / n_lines, chars / n_chars


def _line_duplicates(text: str) -> tuple[int, int, int]:
    """duplicate_stats of re.split('\\n+', text) without the regex: split at every '\\n', then account
    for the empty strings re.split would not produce (it keeps one only at each end)."""
    parts = text.split("\n")
    unique = set(parts)
    empty = parts.count("")
    ends = (parts[0] == "") + (len(parts) > 1 and parts[-1] == "")
    n_lines = len(parts) - empty + ends
    n_unique = len(unique) - ("" in unique) + (ends > 0)
    if n_unique == n_lines:
        return n_lines, 0, 0
    return n_lines, n_lines - n_unique, sum(map(len, parts)) - sum(map(len, unique))


def bullet_and_ellipsis_lines(text: str, lines: list[str]) -> tuple[int, int, int]:
    """(lines, lines starting with a bullet, lines ending in an ellipsis); lines = text.splitlines()."""
    bullets = ellipsis = 0
    if "•" in text or "-" in text:
        bullets = sum(1 for line in lines if line.lstrip().startswith(BULLETS))
    if "..." in text or "…" in text:
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


def c4_document_checks(
    text: str,
    rules: C4Rules,
    lines: list[str] | None = None,
    end_punctuation: tuple[str, ...] = C4_END_PUNCTUATION,
    char_words: bool = False,
) -> tuple[bool, bool, int]:
    """(has lorem ipsum, has a curly bracket, sentences in the lines C4 keeps), in DataTrove's line order.

    `end_punctuation` is what a kept line must end with; `char_words` counts a line's words as its
    non-space characters, for languages written without spaces (where a "word" longer than
    `max_word_length` is just a long line, so that check is off too).

    Substrings absent from the whole document are never searched per line, and without lorem ipsum or
    '{' only the sentence count can fail, so counting stops as soon as `min_sentences` is reached.
    """
    present = _lowered_substrings(text, ("lorem ipsum", "javascript", *C4_POLICY_SUBSTRINGS))
    may_lorem = rules.reject_lorem_ipsum and "lorem ipsum" in present
    may_curly = rules.reject_curly_bracket and "{" in text
    may_javascript = rules.drop_javascript_lines and "javascript" in present
    may_policy = rules.drop_policy_lines and any(p in present for p in C4_POLICY_SUBSTRINGS)
    need = rules.min_sentences or 0
    stop_early = not (may_lorem or may_curly)
    has_lorem = has_curly = False
    sentences = 0
    limit = rules.max_word_length
    for raw in text.splitlines() if lines is None else lines:
        line = raw.strip()
        if not line or (
            limit and len(line) > limit and not char_words and not _c4_keeps_line_shape(line, rules)
        ):
            continue
        if rules.remove_citations and "[" in line:
            line = _CITATION_RE.sub("", line)
        if rules.require_terminal_punct and (not line.endswith(end_punctuation) or line.endswith("...")):
            continue
        if rules.min_words_per_line and _line_words(raw, char_words) < rules.min_words_per_line:
            continue
        lowered_line = line.lower() if (may_lorem or may_javascript or may_policy) else ""
        has_lorem = has_lorem or (may_lorem and "lorem ipsum" in lowered_line)
        if may_javascript and "javascript" in lowered_line:
            continue
        has_curly = has_curly or (may_curly and "{" in line)
        if may_policy and any(p in lowered_line for p in C4_POLICY_SUBSTRINGS):
            continue
        sentences += count_sentences(line)
        if stop_early and sentences >= need:
            break
    return has_lorem, has_curly, sentences


def _line_words(line: str, char_words: bool) -> int:
    """Words of a line as C4 counts them (whitespace-separated), or its visible characters."""
    parts = line.split()
    return sum(map(len, parts)) if char_words else len(parts)


def _lowered_substrings(text: str, needles: Sequence[str]) -> set[str]:
    """The needles found in text.lower(), window by window (see lowered_windows)."""
    found: set[str] = set()
    for segment, _ in lowered_windows(text, max(map(len, needles))):
        found.update(needle for needle in needles if needle in segment)
    return found


def _c4_keeps_line_shape(line: str, rules: C4Rules) -> bool:
    """C4 drops lines holding a word longer than max_word_length (minified code, base64 blobs)."""
    limit = rules.max_word_length
    return not (limit and len(line) > limit and any(len(word) > limit for word in line.split()))

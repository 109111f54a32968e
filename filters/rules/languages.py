"""What the rules need to know about a document's language: the `lang` column of the `langid` stage
(lid.176 codes), English (today's rules, unchanged) when the column or a row's value is missing.

- Words: space-separated scripts use the tokenizer of `words` (whitespace, then punctuation split off).
  Languages written without spaces between words (`UNSPACED`) make each letter of those scripts, with
  its combining marks, one token (BERT's rule for CJK ideographs, extended to kana, Thai, Lao, Khmer and
  Myanmar); other characters in such a document (Latin words, digits) are tokenized as usual. Rules
  about words then read k letters as one word, k being the language's `CHARS_PER_WORD`: the word-count
  thresholds apply to letters / k, Gopher's n-gram repetition looks at round(n * k)-letter n-grams
  (at most 32), and FineWeb's short line (30 characters, ~4 English words) is ~4 * k letters. The
  mean-word-length rule means nothing there and is skipped.
- Stop words (Gopher's "at least 2 distinct stop words"): English keeps Gopher's 8 words
  (`gopher_quality.stop_words`); 32 other languages use the lists of the `stop-words` package (BSD-3),
  read as data, and in an unspaced language only their one-character entries (the only ones that can be
  a word there). Those lists are longer than Gopher's (100-1900 words), so the rule is looser than in
  English: it still rejects text with no function words at all (lists, keyword spam, tables).
- Bad words (C4): English keeps `c4.bad_words_file` (default better-profanity); another language uses
  the LDNOOBW list `<c4.bad_words_dir>/<lang>`, the list C4 used. Like C4 (TFDS c4_utils), ja, th and zh
  lists match anywhere in the lowercased text, every other language only flanked by non-word characters,
  and C4's allowlist of common sub-words is removed (ja: sm, グロ, 女の子; zh: 性).

A language without a stop-word or bad-word list skips that rule (never failed), and the stage counts the
skipped documents per language in its stats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ENGLISH = "en"

CHARS_PER_WORD = {"zh": 1.5, "wuu": 1.5, "yue": 1.5, "ja": 2.2, "th": 4.1, "km": 3.6, "lo": 4.5, "my": 3.7}
"""Letters per English word of the lid.176 languages written without spaces between words (wuu and yue
are Chinese varieties): letters of the language's Universal Declaration of Human Rights (UDHR2) over the
1,717 words of the English one, the same text (zh: 2,676 simplified, 2,514 traditional; ja 3,759;
th 7,113; km 6,189; lo 7,778; my 6,442)."""

UNSPACED = frozenset(CHARS_PER_WORD)

ENGLISH_CHARS_PER_WORD = 7.2
"""Characters (spaces and punctuation included) per word of the same English UDHR (12,321 / 1,717): turns
FineWeb's short-line length in characters into words, for the unspaced languages."""

SUBSTRING_BAD_WORDS = frozenset({"ja", "th", "zh"})
"""Languages whose LDNOOBW list C4 matched as plain substrings, without word boundaries."""

C4_BAD_WORD_ALLOWLIST = {"ja": frozenset({"sm", "グロ", "女の子"}), "zh": frozenset({"性"})}
"""C4's list entries that are common parts of ordinary words (each filtered >10% of its language)."""

LDNOOBW_NAMES = {"tl": "fil"}
"""lid.176 code -> LDNOOBW file name, where they differ (Tagalog is `fil` there)."""

STOP_WORD_NAMES = {"no": "nb"}
"""lid.176 code -> code of the stop-words package, where they differ (Norwegian Bokmål is `nb` there)."""


def is_unspaced(lang: str) -> bool:
    return lang in UNSPACED


@lru_cache(maxsize=256)
def package_stop_words(lang: str) -> tuple[str, ...] | None:
    """The stop-words package's list for a lid.176 code (one-character entries for an unspaced language),
    None when the package has no list for it."""
    from stop_words import LANGUAGE_MAPPING, get_stop_words

    code = STOP_WORD_NAMES.get(lang, lang)
    if code not in LANGUAGE_MAPPING:
        return None
    words = [w.strip() for w in get_stop_words(code) if w.strip()]
    if is_unspaced(lang):
        words = [w for w in words if len(w) == 1]
    return tuple(words) or None


def ldnoobw_words(folder: Path, lang: str) -> list[str] | None:
    """The LDNOOBW list of a language in `folder` without C4's allowlisted entries, None when absent."""
    path = folder / LDNOOBW_NAMES.get(lang, lang)
    if not path.is_file():
        return None
    allowed = C4_BAD_WORD_ALLOWLIST.get(lang, frozenset())
    words = [line.strip() for line in path.read_text("utf-8").splitlines()]
    return [w for w in words if w and w.lower() not in allowed]


@dataclass(frozen=True)
class LanguageRun:
    """Documents start:stop (in evaluation order) are all in language `lang`."""

    lang: str
    start: int
    stop: int

    @property
    def docs(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def unspaced(self) -> bool:
        return is_unspaced(self.lang)

    @property
    def chars_per_word(self) -> float:
        """Tokens (letters) per word: 1 in a spaced language."""
        return CHARS_PER_WORD.get(self.lang, 1.0)


def group_by_language(
    langs: pa.Array | pa.ChunkedArray | Sequence[str | None] | None, n_docs: int
) -> tuple[np.ndarray | None, list[LanguageRun]]:
    """(order, runs): the evaluation order that makes each language's documents contiguous, spaced
    languages first, then unspaced ones by letters per word (order[k] is the original index of the k-th
    document; None keeps the order, as for a single language), and the runs of one language in it.

    Missing languages (no column, a null value) are English. Vectorised: a dictionary encoding and one
    stable sort, no Python per document."""
    if langs is None:
        return None, [LanguageRun(ENGLISH, 0, n_docs)]
    array = langs if isinstance(langs, (pa.Array, pa.ChunkedArray)) else pa.array(langs, pa.string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    encoded = pc.fill_null(array.cast(pa.string()), ENGLISH).dictionary_encode()
    codes = encoded.dictionary.to_pylist()
    ids = np.asarray(encoded.indices, dtype=np.int64)
    if len(codes) <= 1:
        return None, [LanguageRun(codes[0] if codes else ENGLISH, 0, n_docs)]
    family = np.array([CHARS_PER_WORD.get(code, 0.0) for code in codes])
    order = np.lexsort((ids, family[ids]))
    sorted_ids = ids[order]
    bounds = np.r_[0, np.flatnonzero(np.diff(sorted_ids)) + 1, n_docs].tolist()
    runs = [LanguageRun(codes[sorted_ids[a]], a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return order, runs


def runs_within(runs: Sequence[LanguageRun], start: int, stop: int) -> list[LanguageRun]:
    """The runs' parts inside documents start:stop, counted from start (the runs of one chunk)."""
    return [
        LanguageRun(run.lang, max(run.start, start) - start, min(run.stop, stop) - start)
        for run in runs
        if run.start < stop and run.stop > start
    ]

"""How many of a text's tokens are in a word list, as one compiled (numba) pass over a batch's UTF-8
bytes: the word-list counts of `filters.toxicity.profanity_rate`.

Why: done as Arrow passes (split on whitespace, trim, look up) this costs several passes and a Python
string per token; here one pass per batch scans the bytes in place, trims with a per-code-point table of
`filters.lm_unicode` and looks tokens up in an open-addressing table of the words' bytes. The counts are
the Arrow passes' own, quirks included (tests/filters/test_lm_kernels.py compares them on every code
point and on real text).

Call `warm_up()` in a stage's setup(): it loads (or compiles, the first time on a machine) the kernel.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa

from curate.utf8_arrays import as_text_array, code_before, decode_at, utf8_buffers
from filters.lm_unicode import WORD_TRIM, token_classes

WHITESPACE, TRIMMED = 1, 2  # token_classes bits
CANDIDATES = 8192
"""Token bounds the word scan holds before looking the tokens up."""


@numba.njit(cache=True)
def _fnv1a(data, start, end):
    """FNV-1a 64 of data[start:end] (the word set's hash, for its build and its lookups alike)."""
    h = np.uint64(0xCBF29CE484222325)
    for i in range(start, end):
        h = (h ^ np.uint64(data[i])) * np.uint64(0x100000001B3)
    return h


@numba.njit(cache=True)
def _shape(data, start, end):
    """A 16-bit digest of a token's length and first, second and last bytes: a word's is marked in
    `WordSet.shapes`, so most tokens are rejected before they are hashed."""
    if start >= end:
        return 0
    mixed = np.uint64(end - start) * np.uint64(0x9E3779B97F4A7C15)
    mixed ^= np.uint64(data[start]) * np.uint64(0xC2B2AE3D27D4EB4F)
    mixed ^= np.uint64(data[end - 1]) * np.uint64(0x165667B19E3779F9)
    mixed ^= np.uint64(data[min(start + 1, end - 1)]) * np.uint64(0x27D4EB2F165667C5)
    return np.int64(mixed >> np.uint64(48))


@dataclass(frozen=True)
class WordSet:
    """Words' UTF-8 bytes in an open-addressing hash table; a lookup compares the bytes exactly."""

    slots: np.ndarray
    """int64, a power of two at least twice the words: a word's index, or -1 for an empty slot."""
    starts: np.ndarray
    """int64, words + 1: each word's bytes in `data`."""
    data: np.ndarray
    shapes: np.ndarray
    """bool per `_shape` digest: whether a word has it."""

    @classmethod
    def of(cls, words: Iterable[str]) -> WordSet:
        encoded = [w.encode() for w in sorted(set(words))]
        starts = np.cumsum([0] + [len(w) for w in encoded]).astype(np.int64)
        data = np.frombuffer(b"".join(encoded), np.uint8) if encoded else np.zeros(0, np.uint8)
        slots = np.full(1 << max(1, 2 * len(encoded) - 1).bit_length(), -1, np.int64)
        shapes = np.zeros(1 << 16, np.bool_)
        for index in range(len(encoded)):
            start, end = starts[index], starts[index + 1]
            shapes[_shape(data, start, end)] = True
            slot = int(_fnv1a(data, start, end)) & (len(slots) - 1)
            while slots[slot] >= 0:
                slot = (slot + 1) & (len(slots) - 1)
            slots[slot] = index
        return cls(slots, starts, data, shapes)

    def longest(self) -> int:
        return int(np.diff(self.starts).max(initial=0))

    def holds_empty(self) -> bool:
        return bool((np.diff(self.starts) == 0).any())


@numba.njit(cache=True)
def _is_word(data, start, end, slots, starts, words):
    """1 if data[start:end] is one of the words, else 0."""
    mask = len(slots) - 1
    slot = np.int64(_fnv1a(data, start, end) & np.uint64(mask))
    while slots[slot] >= 0:
        word = slots[slot]
        if starts[word + 1] - starts[word] == end - start:
            base = starts[word] - start
            same = True
            for i in range(start, end):
                if data[i] != words[base + i]:
                    same = False
                    break
            if same:
                return 1
        slot = (slot + 1) & mask
    return 0


@numba.njit(cache=True)
def _trimmed(data, first, last, classes):
    """The span data[first:last] without its TRIMMED code points at either end."""
    while first < last:
        code, width = decode_at(data, first)
        if not classes[code] & TRIMMED:
            break
        first += width
    while last > first:
        code, width = code_before(data, first, last)
        if not classes[code] & TRIMMED:
            break
        last -= width
    return first, last


@numba.njit(cache=True)
def _words_among(data, bounds, pairs, classes, slots, starts, words, shapes, longest):
    """How many of the tokens data[bounds[2k]:bounds[2k + 1]], k < pairs, are words once trimmed."""
    found = 0
    for k in range(pairs):
        first, last = bounds[2 * k], bounds[2 * k + 1]
        ends = data[first] | data[last - 1]
        if ends >= 0x80 or (classes[data[first]] | classes[data[last - 1]]) & TRIMMED:
            first, last = _trimmed(data, first, last, classes)  # most tokens: ASCII ends, nothing to trim
        if last - first <= longest and shapes[_shape(data, first, last)]:
            found += _is_word(data, first, last, slots, starts, words)
    return found


@numba.njit(cache=True)
def _empty_tokens(data, start, end, classes):
    """The empty tokens Arrow's `utf8_split_whitespace` gives a row: one for an empty row, else one for
    a leading whitespace run, and for a trailing one, one if it is a single character and two if it is
    longer (Arrow 26 ends the separator before the last character of the row, which then makes a second
    separator; checked against Arrow in tests/filters/test_lm_kernels.py)."""
    if start == end:
        return 1
    code, _ = decode_at(data, start)
    empty = classes[code] & WHITESPACE
    last, trailing = end, 0
    while trailing < 2 and last > start:
        code, width = code_before(data, start, last)
        if not classes[code] & WHITESPACE:
            break
        last -= width
        trailing += 1
    return empty + trailing


@numba.njit(cache=True)
def _word_counts(data, offsets, classes, slots, starts, words, shapes, longest, empty_word, bounds):
    """Per row: its tokens as Arrow splits it (`_empty_tokens` included), and those which, trimmed, are
    words (`empty_word`: whether the empty string is one).

    The scan does not branch on the characters: every byte position is stored in `bounds` and the count
    moves past it only where a token opens or closes (on web text a branch there goes the other way every
    few bytes, and mispredictions cost more than the scan). Full buffers and each row's end go to
    `_words_among`; an open token's start is carried over."""
    rows = len(offsets) - 1
    hits = np.zeros(rows, np.int64)
    tokens = np.zeros(rows, np.int64)
    capacity = len(bounds) - 1
    for row in range(rows):
        i, end = offsets[row], offsets[row + 1]
        inside, count = 0, 0
        while i < end:
            stop = min(end, i + capacity - count)  # a byte adds one bound at most: no check inside
            while i < stop:
                byte = data[i]
                if byte < 0x80:
                    kind, width = classes[byte], 1
                else:
                    code, width = decode_at(data, i)
                    kind = classes[code]
                word = 1 - (kind & WHITESPACE)
                bounds[count] = i
                count += word ^ inside
                inside = word
                i += width
            if count >= capacity - 1:
                pairs = count // 2
                hits[row] += _words_among(data, bounds, pairs, classes, slots, starts, words, shapes, longest)
                tokens[row] += pairs
                bounds[0] = bounds[count - 1]
                count -= 2 * pairs
        bounds[count] = end
        count += inside
        pairs = count // 2
        empty = _empty_tokens(data, offsets[row], end, classes)
        hits[row] += _words_among(data, bounds, pairs, classes, slots, starts, words, shapes, longest)
        hits[row] += empty * empty_word
        tokens[row] += pairs + empty
    return hits, tokens


def word_list_counts(texts: pa.Array, words: WordSet, trim: str) -> tuple[np.ndarray, np.ndarray]:
    """Per text (no nulls): its tokens as Arrow's `utf8_split_whitespace` splits it, and how many of them,
    with the characters of `trim` trimmed from both ends as `utf8_trim` does, are among `words`."""
    data, offsets = utf8_buffers(as_text_array(texts))
    return _word_counts(
        data, offsets, token_classes(trim), words.slots, words.starts, words.data, words.shapes,
        words.longest(), int(words.holds_empty()), np.empty(CANDIDATES, np.int64),
    )  # fmt: skip


def warm_up() -> None:
    """Build the tables and load or compile the kernel, so the first batch of a stage pays nothing (call
    it in setup()). ~1 s; a first compile on a machine takes longer."""
    word_list_counts(pa.array(["A\u00e9\u0663 \u2014 x\u05c8!\r\n"]), WordSet.of(["x"]), WORD_TRIM)

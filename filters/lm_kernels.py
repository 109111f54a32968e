"""Compiled (numba) passes over a batch's UTF-8 bytes: the KenLM normalisation after lowercasing, and the
word-list counts of `filters.toxicity.profanity_rate`.

Why: done as Arrow passes (NFD, then one regex or numpy pass per step) these cost ~0.03 s per MB, more
than half of it rewriting the whole column again and again. Here one pass per batch reads an Arrow
column's buffers in place and writes the new column once; every character is classified by one lookup in
a per-code-point table that `filters.lm_unicode` asked of the same Arrow engines the passes used, so the
results are the passes' own (tests/filters compare them on real text and on every code point).

The normalisation, per code point, in the passes' order (CCNet's, see `filters.kenlm_lm`):

- NFD: a code point that decomposes is replaced by its decomposition. NFD also reorders combining marks;
  that changes nothing here because the marks are removed next, except for the few characters with a
  non-zero combining class that survive removal (`HARD`): the rows holding one go through Arrow's NFD
  first (their NFD decomposes nothing further, so the kernel then changes nothing in that step);
- combining marks and non-printing characters are dropped, decimal digits become `0`, CCNet's
  punctuation map replaces its sources;
- punctuation and symbols are split off as tokens and every run of spaces and newlines becomes one
  newline if it holds one, else one space; runs at either end are dropped. This is what " \\1 ", the
  space-run collapse, " ?\\n[ \\n]*" -> "\\n" and the trim did: a `pending` separator is written only
  before the next character, never at a row's start or end.

Call `warm_up()` in a stage's setup(): it builds the tables and loads (or compiles, the first time on a
machine) the kernels, ~1 s, so a batch never pays for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.utf8_arrays import as_text_array, char_width, code_point, string_array, utf8_buffers
from filters.lm_unicode import (
    DECOMPOSE,
    HARD,
    NEWLINE,
    OTHER,
    POST_MASK,
    PRE_SHIFT,
    PUNCTUATION_SOURCE,
    REMOVE,
    SPACE,
    SPLIT,
    WORD_TRIM,
    ZERO,
    normalization_tables,
    token_classes,
)

WHITESPACE, TRIMMED = 1, 2  # token_classes bits
CANDIDATES = 8192
"""Token bounds the word scan holds before looking the tokens up."""
INITIAL_CAPACITY = 1.25
"""The normalised column's first buffer, times the input's bytes (web text grows a few %); a batch that
needs more gets a buffer twice the size and its unfinished row is done again."""


# --------------------------------------------------------------------------------------------- UTF-8


@numba.njit(cache=True, inline="always")
def _decode(data, i):
    """The code point at byte i (Arrow strings are valid UTF-8) and its width."""
    width = char_width(data[i])
    return np.int64(code_point(data, i, width)), width


@numba.njit(cache=True, inline="always")
def _encode(out, o, code):
    """Write a code point's UTF-8 at out[o]; the position after it."""
    if code < 0x80:
        out[o] = code
        return o + 1
    if code < 0x800:
        out[o] = 0xC0 | (code >> 6)
        out[o + 1] = 0x80 | (code & 0x3F)
        return o + 2
    if code < 0x10000:
        out[o] = 0xE0 | (code >> 12)
        out[o + 1] = 0x80 | ((code >> 6) & 0x3F)
        out[o + 2] = 0x80 | (code & 0x3F)
        return o + 3
    out[o] = 0xF0 | (code >> 18)
    out[o + 1] = 0x80 | ((code >> 12) & 0x3F)
    out[o + 2] = 0x80 | ((code >> 6) & 0x3F)
    out[o + 3] = 0x80 | (code & 0x3F)
    return o + 4


# ------------------------------------------------------------------------------------- normalisation


# What a character does to the output, as bits of one byte, so that the pass computes instead of branching
# (on web text a branch on the character class goes the other way every few bytes, and mispredictions
# cost more than the rest of the pass). The separator pending after the characters so far is one of:
NO_SEPARATOR, SPACE_SEPARATOR, NEWLINE_SEPARATOR = 0, 1, 3
# bit patterns, so that "a newline wins over a space" is an OR. A character's ops: pending after it =
# (pending & KEEP bits) | SET bits; a written one (WRITES) is preceded by the pending separator, at least
# a space for a split one (AT_LEAST_SPACE); none is written at a row's start (the trim), and the one still
# pending at its end is dropped.
KEEP_PENDING, AT_LEAST_SPACE, WRITES = 0b11, 1 << 4, 1 << 5
DROPPED = 4
"""A post-map class of the ASCII table only: a removed character."""
OPS = np.zeros(5, np.uint8)
OPS[OTHER] = WRITES  # written after the pending separator; nothing pending after it
OPS[SPLIT] = WRITES | AT_LEAST_SPACE | SPACE_SEPARATOR << 2  # " x ", collapsing with what is around it
OPS[SPACE] = KEEP_PENDING | SPACE_SEPARATOR << 2  # a space pending, unless a newline is
OPS[NEWLINE] = NEWLINE_SEPARATOR << 2  # a newline pending
OPS[DROPPED] = KEEP_PENDING  # changes nothing
"""Ops per post-map class."""


@lru_cache(maxsize=1)
def ascii_tables() -> tuple[np.ndarray, np.ndarray]:
    """Each ASCII byte's ops and the byte it writes (a digit: 0), from the normalisation's tables: ASCII
    takes a path with no branch on the character."""
    classes = normalization_tables().classes[:128]
    fates = (classes >> PRE_SHIFT) & 7
    if np.isin(fates, [PUNCTUATION_SOURCE, DECOMPOSE]).any():
        raise RuntimeError("an ASCII character is replaced by a sequence: the ASCII path cannot do that")
    written = np.where(fates == ZERO, ord("0"), np.arange(128)).astype(np.uint8)
    return OPS[np.where(fates == REMOVE, DROPPED, classes[written] & POST_MASK)], written


@numba.njit(cache=True, inline="always")
def _step(out, o, row_start, pending, ops):
    """The separator before a character with these ops (written unless at the row's start), and what is
    pending after it. The separator byte is always stored; the position moves only past a real one."""
    before = (pending | ((ops & AT_LEAST_SPACE) >> 4)) * ((ops & WRITES) >> 5)
    out[o] = 32 - 22 * (before >> 1)  # a space, or for the newline separator (3) a newline
    o += (before != NO_SEPARATOR) & (o > row_start)
    return o, (pending & ops & KEEP_PENDING) | ((ops >> 2) & 3)


@numba.njit(cache=True, inline="always")
def _put(out, o, row_start, pending, code, post):
    """One character of the non-ASCII path after the punctuation map, by its post-map class."""
    ops = OPS[post]
    o, pending = _step(out, o, row_start, pending, ops)
    if ops & WRITES:
        o = _encode(out, o, code)
    return o, pending


@numba.njit(cache=True, inline="always")
def _after_nfd(out, o, row_start, pending, code, classes, keys, starts, replacements):
    """One character of the NFD text through removal, digits, the punctuation map and `_put`."""
    fate = (classes[code] >> PRE_SHIFT) & 7
    if fate == REMOVE:
        return o, pending
    if fate == ZERO:
        return _put(out, o, row_start, pending, 48, classes[48] & POST_MASK)
    if fate == PUNCTUATION_SOURCE:
        k = np.searchsorted(keys, code)
        for j in range(starts[k], starts[k + 1]):
            target = replacements[j]
            o, pending = _put(out, o, row_start, pending, target, classes[target] & POST_MASK)
        return o, pending
    return _put(out, o, row_start, pending, code, classes[code] & POST_MASK)


@numba.njit(cache=True)
def _normalize_rows(
    data, offsets, classes, keys, starts, replacements, ascii_ops, ascii_bytes, max_output, out,
    out_offsets, hard, row,
):  # fmt: skip
    """Normalise rows from `row` on into `out`, flagging in `hard` those holding a HARD code point; the
    row it stopped at for want of room (all rows: done)."""
    rows = len(offsets) - 1
    while row < rows:
        o = out_offsets[row]
        row_start, pending = o, NO_SEPARATOR
        i, end = offsets[row], offsets[row + 1]
        while i < end:
            stop = min(end, i + (len(out) - o) // max_output)  # room for these bytes: no check inside
            if stop == i:
                return row
            while i < stop:
                byte = data[i]
                if byte < 0x80:
                    ops = ascii_ops[byte]
                    o, pending = _step(out, o, row_start, pending, ops)
                    out[o] = ascii_bytes[byte]
                    o += (ops & WRITES) >> 5
                    i += 1
                    continue
                code, width = _decode(data, i)
                i += width
                kind = classes[code]
                hard[row] |= (kind & HARD) != 0
                if (kind >> PRE_SHIFT) & 7 == DECOMPOSE:
                    k = np.searchsorted(keys, code)
                    for j in range(starts[k], starts[k + 1]):
                        o, pending = _after_nfd(
                            out, o, row_start, pending, replacements[j], classes, keys, starts, replacements
                        )
                else:
                    o, pending = _after_nfd(
                        out, o, row_start, pending, code, classes, keys, starts, replacements
                    )
        out_offsets[row + 1] = o
        row += 1
    return row


def normalize_lowered(texts: pa.Array) -> pa.Array:
    """CCNet's normalisation after lowercasing (NFD, marks and non-printing characters removed, digits,
    punctuation map, punctuation split, whitespace runs) of texts without nulls; see the module docstring.
    The rows holding a HARD character are done again after Arrow's NFD."""
    texts = as_text_array(texts)
    normalized, hard = _normalized(texts)
    if not hard.any():
        return normalized
    mask = pa.array(hard)
    redone = _normalized(pc.utf8_normalize(texts.filter(mask), form="NFD"))[0]
    return pc.replace_with_mask(normalized, mask, redone.cast(normalized.type))


def _normalized(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """`_normalize_rows` of every row, and which rows hold a HARD character."""
    tables = normalization_tables()
    data, offsets = utf8_buffers(texts)
    out = np.empty(int((offsets[-1] - offsets[0]) * INITIAL_CAPACITY) + tables.max_output, np.uint8)
    out_offsets = np.zeros(len(offsets), np.int64)
    hard = np.zeros(len(texts), np.bool_)
    row = 0
    while True:
        row = _normalize_rows(
            data, offsets, tables.classes, tables.keys, tables.starts, tables.replacements, *ascii_tables(),
            tables.max_output, out, out_offsets, hard, row,
        )  # fmt: skip
        if row == len(texts):
            break
        out = _grown(out, int(out_offsets[row]))
    used = int(out_offsets[-1])
    data = out[:used].copy() if used < len(out) * 0.8 else out[:used]
    return string_array(texts.type, out_offsets, data), hard


def _grown(out: np.ndarray, kept: int) -> np.ndarray:
    """A buffer twice the size holding the first `kept` bytes."""
    bigger = np.empty(2 * len(out), np.uint8)
    bigger[:kept] = out[:kept]
    return bigger


# ------------------------------------------------------------------------------------------ word list


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
def _code_before(data, start, end):
    """The code point ending at byte `end` (none before `start`) and its width."""
    lead = end - 1
    while lead > start and (data[lead] & 0xC0) == 0x80:
        lead -= 1
    return _decode(data, lead)


@numba.njit(cache=True)
def _trimmed(data, first, last, classes):
    """The span data[first:last] without its TRIMMED code points at either end."""
    while first < last:
        code, width = _decode(data, first)
        if not classes[code] & TRIMMED:
            break
        first += width
    while last > first:
        code, width = _code_before(data, first, last)
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
    code, _ = _decode(data, start)
    empty = classes[code] & WHITESPACE
    last, trailing = end, 0
    while trailing < 2 and last > start:
        code, width = _code_before(data, start, last)
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
                    code, width = _decode(data, i)
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
    """Build the tables and load or compile every kernel, so the first batch of a
    stage pays nothing (call it in setup()). ~1 s; a first compile on a machine takes longer."""
    texts = pa.array(["A\u00e9\u0663 \u2014 x\u05c8!\r\n"])
    normalize_lowered(texts)
    word_list_counts(texts, WordSet.of(["x"]), WORD_TRIM)

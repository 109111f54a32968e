"""The KenLM normalisation after lowercasing (CCNet's, see `filters.kenlm_lm`) as one compiled (numba)
pass over a batch's UTF-8 bytes.

Why: done as Arrow passes (NFD, then one regex or numpy pass per step) this costs ~0.03 s per MB, more
than half of it rewriting the whole column again and again. Here one pass per batch reads an Arrow
column's buffers in place and writes the new column once; every character is classified by one lookup in
a per-code-point table that `filters.lm_unicode` asked of the same Arrow engines the passes used, so the
results are the passes' own (tests/filters/test_lm_kernels.py compares them on real text and on every
code point).

The normalisation, per code point, in the passes' order:

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

from functools import lru_cache

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.utf8_arrays import as_text_array, decode_at, encode_at, string_array, utf8_buffers
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
    ZERO,
    normalization_tables,
)

INITIAL_CAPACITY = 1.25
"""The normalised column's first buffer, times the input's bytes (web text grows a few %); a batch that
needs more gets a buffer twice the size and its unfinished row is done again."""


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
        o = encode_at(out, o, code)
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
                code, width = decode_at(data, i)
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


def warm_up() -> None:
    """Build the tables and load or compile the kernel, so the first batch of a stage pays nothing (call
    it in setup()). ~1 s; a first compile on a machine takes longer."""
    normalize_lowered(pa.array(["A\u00e9\u0663 \u2014 x\u05c8!\r\n"]))

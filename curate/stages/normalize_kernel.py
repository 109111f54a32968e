"""The normalize stage's whitespace and control-character rules in one compiled pass over a column's bytes.

Why: as Arrow kernels they were seven passes over the batch (each scanning and copying every byte), about
1.5 s per 100 MB; one pass reading the UTF-8 bytes does the same at a small fraction of that. The rules,
each defined as the regex pass it replaces (tests compare the two on real and adversarial text):

1. "\\r\\n" -> "\\n", then "\\r" -> "\\n";
2. `strip_control`: delete CONTROL_POINTS (C0 controls but tab and newline, DEL, zero-widths, BOM);
3. `unify_spaces`: each of UNICODE_SPACE_POINTS -> " ";
4. `collapse_spaces`: `(\\S)[ \\t]{2,}` -> "\\1 " (a run of 2+ spaces/tabs after a non-space, RE2's \\s
   being [\\t\\n\\f\\r ]);
5. `[ \\t]+\\n` -> "\\n";
6. runs of more than `longest_kept` newlines -> `longest_kept` newlines.

Rules 4-6 only ever change a *gap*, a maximal run of spaces, tabs and newlines, and what they make of it
depends on the gap and on whether the character before it is a non-space: it becomes one space (rule 4),
or its newlines (capped by rule 6) followed by the spaces after its last newline (rule 5 removes the
others). So the gap is written as it comes and rewritten in place once it ends. Nothing here lengthens
the text, so the output buffer is the input's size.
"""

from __future__ import annotations

import unicodedata
from functools import cache

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.utf8_arrays import char_width, code_point, string_array, utf8_buffers

SPACE, TAB, NEWLINE, FORM_FEED, CARRIAGE_RETURN = 0x20, 0x09, 0x0A, 0x0C, 0x0D
UNICODE_SPACE_POINTS = (0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)
CONTROL_POINTS = (
    *range(0x00, 0x09),
    0x0B,
    0x0C,
    *range(0x0E, 0x20),
    0x7F,
    *range(0x200B, 0x200E),
    0x2060,
    0xFEFF,
)
"""The characters rules 2 and 3 remove and replace (as the stage defined them when they were regex passes)."""


def _kinds() -> np.ndarray:
    """Per code point below 0x10000: 1 control, 2 unicode space, 0 other (every listed point is in it)."""
    kinds = np.zeros(0x10000, dtype=np.uint8)
    kinds[list(CONTROL_POINTS)] = 1
    kinds[list(UNICODE_SPACE_POINTS)] = 2
    return kinds


_KINDS = _kinds()


def normalize_whitespace(
    texts: pa.Array, strip_control: bool, unify_spaces: bool, collapse_spaces: bool, longest_kept: int
) -> pa.Array:
    """Rules 1-6 (see the module docstring) on every text of a string array without nulls."""
    if len(texts) == 0:
        return texts
    if texts.null_count:
        done = normalize_whitespace(
            texts.fill_null(""), strip_control, unify_spaces, collapse_spaces, longest_kept
        )
        return pc.if_else(pc.is_null(texts), pa.scalar(None, texts.type), done)
    data, offsets = utf8_buffers(texts)
    out, out_offsets = _normalize(
        data, offsets, _KINDS, strip_control, unify_spaces, collapse_spaces, longest_kept
    )
    return string_array(texts.type, out_offsets, out)


@numba.njit(cache=True)
def _normalize(data, offsets, kinds, strip_control, unify_spaces, collapse_spaces, longest_kept):
    out = np.empty(len(data), dtype=np.uint8)
    out_offsets = np.empty(len(offsets), dtype=np.int64)
    w = 0
    for doc in range(len(offsets) - 1):
        out_offsets[doc] = w
        i, end = offsets[doc], offsets[doc + 1]
        gap_start = -1  # where the current gap begins in `out` (-1: not in a gap)
        after_word = False  # the character before the gap is a non-space (RE2's \S)
        newlines, last_line_start = 0, 0
        while i < end:
            byte = data[i]
            if 0x20 < byte < 0x7F:  # printable ASCII, most of any text: copied as it is
                if gap_start >= 0:
                    rule_4 = collapse_spaces and after_word
                    w = _close_gap(out, w, gap_start, newlines, last_line_start, rule_4, longest_kept)
                    gap_start = -1
                out[w] = byte
                w += 1
                i += 1
                after_word = True
                continue
            width = char_width(byte)
            kind = 0
            if byte == CARRIAGE_RETURN:
                i += 1
                if i < end and data[i] == NEWLINE:
                    continue  # "\r\n": the "\n" comes next
                byte, width = NEWLINE, 0  # a lone "\r" is a newline; nothing more to skip
            elif width == 1:
                kind = kinds[byte]
            else:
                point = code_point(data, i, width)
                kind = kinds[point] if point < len(kinds) else 0
            if kind == 1 and strip_control:
                i += width
                continue
            if kind == 2 and unify_spaces:
                byte, width, i = SPACE, 0, i + width
            if byte in (SPACE, TAB, NEWLINE):
                if gap_start < 0:
                    gap_start, newlines, last_line_start = w, 0, w
                out[w] = byte
                w += 1
                if byte == NEWLINE:
                    newlines += 1
                    last_line_start = w
                i += width
                continue
            if gap_start >= 0:
                rule_4 = collapse_spaces and after_word
                w = _close_gap(out, w, gap_start, newlines, last_line_start, rule_4, longest_kept)
                gap_start = -1
            for k in range(width):
                out[w + k] = data[i + k]
            w += width
            i += width
            after_word = byte != FORM_FEED
        if gap_start >= 0:
            rule_4 = collapse_spaces and after_word
            w = _close_gap(out, w, gap_start, newlines, last_line_start, rule_4, longest_kept)
    out_offsets[len(offsets) - 1] = w
    return out[:w], out_offsets


@numba.njit(cache=True)
def _close_gap(out, w, gap_start, newlines, last_line_start, collapsible, longest_kept):
    """Rewrite the gap out[gap_start:w] as rules 4-6 leave it (`collapsible`: rule 4 applies to a gap
    without newlines); return the new end."""
    if newlines == 0:
        if collapsible and w - gap_start >= 2:
            out[gap_start] = SPACE
            return gap_start + 1
        return w
    kept = min(newlines, longest_kept)
    for k in range(kept):
        out[gap_start + k] = NEWLINE
    tail = w - last_line_start  # the spaces after the last newline stay
    for k in range(tail):
        out[gap_start + kept + k] = out[last_line_start + k]
    return gap_start + kept + tail


# ------------------------------------------------------------------------------------------ NFC / NFKC

TABLE_POINTS = 0x30000
"""Code points the table covers (every plane with a decomposable character); a higher one is a suspect."""
HANGUL_JOINERS = (*range(0x1161, 0x1176), *range(0x11A8, 0x11C3))
"""Hangul vowel and final jamo: they compose with the syllable before them (algorithmically)."""


@cache
def unstable_characters(form: str) -> np.ndarray:
    """Per code point, whether a text holding it might not be in `form`: it changes under `form` alone,
    has a non-zero combining class (it may be reordered or composed), or composes with the character
    before it. A text with none of them passes the Unicode quick check ("yes"): it is in `form`."""
    table = np.zeros(TABLE_POINTS, dtype=np.bool_)
    for code in range(TABLE_POINTS):
        char = chr(code)
        decomposition = unicodedata.decomposition(char)
        if unicodedata.normalize(form, char) != char or unicodedata.combining(char):
            table[code] = True
        if decomposition and not decomposition.startswith("<") and len(decomposition.split()) == 2:
            table[int(decomposition.split()[1], 16)] = True
    table[list(HANGUL_JOINERS)] = True
    return table


def may_change_under(texts: pa.Array, form: str) -> np.ndarray:
    """Per text, whether it holds a character of `unstable_characters(form)` (nulls: no)."""
    data, offsets = utf8_buffers(texts.fill_null("") if texts.null_count else texts)
    return _holds_any(data, offsets, unstable_characters(form))


@numba.njit(cache=True)
def _holds_any(data: np.ndarray, offsets: np.ndarray, table: np.ndarray) -> np.ndarray:
    found = np.zeros(len(offsets) - 1, dtype=np.bool_)
    for doc in range(len(offsets) - 1):
        i, end = offsets[doc], offsets[doc + 1]
        while i < end:
            if data[i] < 0x80:  # no ASCII character changes under NFC or NFKC
                i += 1
                continue
            width = char_width(data[i])
            point = code_point(data, i, width)
            if point >= len(table) or table[point]:
                found[doc] = True
                break
            i += width
    return found

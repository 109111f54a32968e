"""Arrow text columns as raw UTF-8 bytes, and compiled loops over those bytes.

Why: one compiled pass over a batch's bytes costs about a millisecond per MB, where converting the column
to Python strings (and splitting each) costs several; and a loop keeps no per-byte temporaries, so a
document of hundreds of MB costs nothing beyond its own bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import pyarrow as pa

TextBatch = Sequence[str | None] | pa.Array | pa.ChunkedArray

PYTHON_SPACE = np.array([chr(code).isspace() for code in range(0x3001)], dtype=np.bool_)
"""Python's `str.isspace` for every code point up to U+3000, the last character it calls a space."""


def as_text_array(texts: TextBatch) -> pa.Array:
    """Any supported batch as one Arrow string array with no nulls (a null text is an empty one)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if not isinstance(texts, pa.Array):
        try:
            texts = pa.array(texts, type=pa.large_string())
        except (pa.ArrowInvalid, UnicodeEncodeError):  # e.g. lone surrogates: hash what can be encoded
            texts = pa.array(
                [None if t is None else t.encode("utf-8", "replace").decode("utf-8") for t in texts],
                type=pa.large_string(),
            )
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        texts = texts.cast(pa.large_string())
    if texts.null_count:
        texts = texts.fill_null("")
    return texts


def utf8_buffers(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Zero-copy views of an Arrow string array: its bytes and rebased int64 offsets."""
    _, offsets_buf, data_buf = texts.buffers()
    off_type = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=off_type)[texts.offset : texts.offset + len(texts) + 1]
    offsets = offsets.astype(np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]]
    return data, offsets - offsets[0]


def string_array(like: pa.DataType, offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    """Strings of the type of `like` (large_string when 32-bit offsets would overflow), without nulls."""
    small = pa.types.is_string(like) and offsets[-1] < 2**31
    kind, offset_type = (pa.string(), np.int32) if small else (pa.large_string(), np.int64)
    buffers = [None, pa.py_buffer(offsets.astype(offset_type, copy=False)), pa.py_buffer(data)]
    return pa.Array.from_buffers(kind, len(offsets) - 1, buffers)


def word_counts(texts: TextBatch) -> np.ndarray:
    """`len(text.split())` of every text (0 for a null): the runs of characters that are not whitespace,
    as Python's `str.isspace` defines it."""
    data, offsets = utf8_buffers(as_text_array(texts))
    return _word_counts(data, offsets, PYTHON_SPACE)


@numba.njit(cache=True)
def char_width(lead: int) -> int:
    """Bytes of the UTF-8 character starting with this byte."""
    return 1 if lead < 0x80 else (2 if lead < 0xE0 else (3 if lead < 0xF0 else 4))


@numba.njit(cache=True)
def code_point(data: np.ndarray, i: int, width: int) -> int:
    """The code point of the `width`-byte UTF-8 character at data[i]."""
    if width == 1:
        return data[i]
    if width == 2:
        return ((data[i] & 0x1F) << 6) | (data[i + 1] & 0x3F)
    if width == 3:
        return ((data[i] & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F)
    return (
        ((data[i] & 0x07) << 18)
        | ((data[i + 1] & 0x3F) << 12)
        | ((data[i + 2] & 0x3F) << 6)
        | (data[i + 3] & 0x3F)
    )


@numba.njit(cache=True, inline="always")
def decode_at(data, i):
    """The code point at byte i of valid UTF-8 (Arrow's strings are) and its width."""
    width = char_width(data[i])
    return np.int64(code_point(data, i, width)), width


@numba.njit(cache=True)
def code_before(data, start, end):
    """The code point ending at byte `end` (none before `start`) and its width."""
    lead = end - 1
    while lead > start and (data[lead] & 0xC0) == 0x80:
        lead -= 1
    return decode_at(data, lead)


@numba.njit(cache=True, inline="always")
def encode_at(out, o, code):
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


@numba.njit(cache=True)
def _word_counts(data: np.ndarray, offsets: np.ndarray, space: np.ndarray) -> np.ndarray:
    counts = np.zeros(len(offsets) - 1, dtype=np.int64)
    for doc in range(len(offsets) - 1):
        i, end, words, in_word = offsets[doc], offsets[doc + 1], 0, False
        while i < end:
            width = char_width(data[i])
            point = code_point(data, i, width)
            is_space = point < len(space) and space[point]
            words += not is_space and not in_word
            in_word = not is_space
            i += width
        counts[doc] = words
    return counts

"""Arrow text columns as raw UTF-8 bytes for numpy, and the per-document counts taken from those bytes.

Why: a pass over a batch's bytes with numpy costs a few milliseconds per 10 MB, where converting the
column to Python strings (and splitting each) costs tens. Work runs on blocks of at most BLOCK_BYTES, so
a document of hundreds of MB costs a few block-sized masks, not masks of its size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

TextBatch = Sequence[str | None] | pa.Array | pa.ChunkedArray
BLOCK_BYTES = 1 << 24

_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20]] = True
_WIDE_SPACES = [
    chr(code).encode()
    for code in (0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000)
]
"""Python's `str.isspace` characters: the ASCII ones above and these, as UTF-8 (tests check the set)."""


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


def word_counts(texts: TextBatch) -> np.ndarray:
    """`len(text.split())` of every text (0 for a null): how many runs of non-whitespace characters it
    holds, whitespace as Python's `str.isspace` defines it, counted on the bytes block by block."""
    data, offsets = utf8_buffers(as_text_array(texts))
    counts = np.zeros(len(offsets) - 1, dtype=np.int64)
    for block in range(0, len(data), BLOCK_BYTES):
        stop = min(block + BLOCK_BYTES, len(data))
        context = max(block - 1, 0)  # the byte before the block decides whether its first byte begins a word
        space = _space_bytes(data, context, stop)
        begins = ~space
        begins[1:] &= space[:-1]
        begins[0] = not space[0]  # the block's first byte when it is the data's first, else the context byte
        doc_starts = offsets[:-1][(offsets[:-1] >= block) & (offsets[:-1] < stop)] - context
        begins[doc_starts] = ~space[doc_starts]  # a document opens with a word unless it opens with a space
        positions = np.flatnonzero(begins[block - context :]) + block
        counts += np.diff(np.searchsorted(positions, offsets))
    return counts


def _space_bytes(data: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Whether each byte of data[start:stop] belongs to a whitespace character. The bytes just outside
    are read too, so a multi-byte space cut by either edge is still found."""
    low, high = max(start - 2, 0), min(stop + 2, len(data))
    chunk = data[low:high]
    space = _ASCII_SPACE[chunk]
    leads = np.flatnonzero((chunk >= 0xC2) & (chunk <= 0xE3))
    if len(leads):
        padded = np.concatenate([chunk, np.zeros(2, np.uint8)])
        three = (padded[leads].astype(np.uint32) << 16) | (padded[leads + 1].astype(np.uint32) << 8)
        three |= padded[leads + 2]
        for width, keys in ((2, _WIDE_KEYS_2), (3, _WIDE_KEYS_3)):
            found = leads[np.isin(three >> (8 * (3 - width)), keys)]
            for k in range(width):
                space[np.minimum(found + k, len(chunk) - 1)] = True
    return space[start - low : stop - low]


_WIDE_KEYS_2 = np.array([int.from_bytes(s, "big") for s in _WIDE_SPACES if len(s) == 2], np.uint32)
_WIDE_KEYS_3 = np.array([int.from_bytes(s, "big") for s in _WIDE_SPACES if len(s) == 3], np.uint32)

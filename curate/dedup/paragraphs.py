"""Boilerplate lines and paragraphs, CCNet style: the text side (units, their hashes, stripping).

A document is cut into *units*: its lines (`unit: line`, CCNet's choice: a WET paragraph is a line) or
its paragraphs (`unit: paragraph`: maximal runs of lines that hold at least one word, so blank lines and
lines of punctuation only, such as `* * *`, separate paragraphs). A unit is compared through a 64-bit
hash of its normalised words: lower case, NFKD with combining marks dropped (accents stripped), every
digit turned into 0, and punctuation, symbols and spacing ignored (a word is a run of letters, digits
and marks, exactly as the MinHash shingler reads words). So `Posted on 12 May 2021 | Share!` and
`posted on 30 june 2023 share` are not the same unit (the month differs) but `© 2019 Example Inc.` and
`(c) 2023 example inc` are. Units whose normalised text (words joined by single spaces) is shorter than
`min_chars` are never counted or removed: in a large corpus every short line ("Yes.", "Chapter 1") is in
thousands of documents, and removing those would cut dialogue and headings rather than boilerplate.

Everything per batch is vectorised over the UTF-8 bytes of the whole Arrow batch (no Python per unit or
per word): line boundaries from the newline bytes, words and their hashes from the shingler's kernels,
a unit's hash as a position-keyed sum of its word hashes reduced with `np.add.reduceat`. Only documents
holding a character that normalisation can change (accented letters, non-ASCII digits, compatibility
forms: found through a code-point table) go through Arrow's NFKD + regex kernels first. Stripping a
document (the apply step, only for documents that lose a unit) works on its lines in Python.

The hash depends on the text alone (not on the batch, the machine or PYTHONHASHSEED), so hashes written
by one run can be counted by another through the persistent index.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.dedup.settings import ParagraphConfig
from curate.dedup.shingles import (
    _BATCH_BYTES,
    _decode_leads,
    _fmix64,
    _hash_keys,
    _normalise_bytes,
    _sub_batches,
    _word_hashes,
    _word_spans,
)
from curate.schema import UNASSIGNED_DOMAIN
from curate.utf8_arrays import as_text_array, utf8_buffers

PARAGRAPH_DIR = "_dedup/paragraphs"  # per-shard unit hashes; under the sketch dir so a redone shard clears it
HASH_VERSION = 1  # bump when the normalisation or the hash changes: index segments are kept per version
_SEED = 0x9A7A_62A9_B0E1_E7A1
_POSITION_MULT = 0xA24BAED4963EE407
_LENGTH_MULT = 0x9FB21C651E98DF25

REMOVED_UNITS = "dup_paragraphs_removed"
REMOVED_CHARS = "dup_chars_removed"
COUNT_FIELDS = [pa.field(REMOVED_UNITS, pa.int64()), pa.field(REMOVED_CHARS, pa.int64())]

UNIT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("domain", pa.string()),
        pa.field("hash", pa.uint64()),
        pa.field("chars", pa.int32()),  # characters of the unit's lines, newlines not counted
        pa.field("doc_chars", pa.int64()),  # characters of all lines of the document that hold words
    ]
)


@dataclass(frozen=True)
class Units:
    """The units of a batch of documents, in document and line order.

    Unit `k` belongs to document `doc[k]` and spans its lines `first_line[k]..last_line[k]` (0-based,
    inclusive). `norm_chars` is the length of its normalised text, `chars` the characters of its lines
    as written. `doc_chars[i]` is the characters of document `i`'s lines that hold words."""

    doc: np.ndarray
    hash: np.ndarray
    first_line: np.ndarray
    last_line: np.ndarray
    norm_chars: np.ndarray
    chars: np.ndarray
    doc_chars: np.ndarray

    def select(self, keep: np.ndarray) -> Units:
        return Units(
            self.doc[keep],
            self.hash[keep],
            self.first_line[keep],
            self.last_line[keep],
            self.norm_chars[keep],
            self.chars[keep],
            self.doc_chars,
        )


@functools.lru_cache(maxsize=1)
def _bmp_kinds() -> tuple[np.ndarray, np.ndarray]:
    """For each BMP code point: may NFKD or mark removal change it (NFKD differs, a combining mark, or
    unassigned in this Python, which a later Unicode may assign)? Is it a decimal digit? Built once."""
    decompose = np.zeros(0x10000, dtype=bool)
    digit = np.zeros(0x10000, dtype=bool)
    for code in range(0x80, 0x10000):
        ch = chr(code)
        category = unicodedata.category(ch)
        decompose[code] = category in ("Mn", "Cn") or unicodedata.normalize("NFKD", ch) != ch
        digit[code] = category in ("Nd", "Cn")
    return decompose, digit


def _needs_form(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Documents holding a character NFKD or mark removal may change, and documents holding a non-ASCII
    digit (astral characters, such as emoji, count as both); only those go through Arrow's kernels."""
    leads = np.flatnonzero(data >= 0xC0)
    decompose = np.zeros(offsets.size - 1, dtype=bool)
    digit = np.zeros(offsets.size - 1, dtype=bool)
    if leads.size == 0:
        return decompose, digit
    padded = np.concatenate([data, np.zeros(3, dtype=np.uint8)])
    code, _ = _decode_leads(padded, leads)
    bmp = code < 0x10000
    table_decompose, table_digit = _bmp_kinds()
    for flags, table in ((decompose, table_decompose), (digit, table_digit)):
        hit = np.ones(code.size, dtype=bool)
        hit[bmp] = table[code[bmp]]
        flags[np.searchsorted(offsets, leads[hit], side="right") - 1] = True
    return decompose, digit


def dedup_form(texts: pa.Array) -> pa.Array:
    """NFKD, combining marks dropped, every decimal digit to 0, for the documents that hold a character
    this can change (the byte kernel lower-cases and maps ASCII digits of all). Newlines are never
    touched, so line `k` of the result is line `k` of the input. Returns `texts` itself when no document
    needs it."""
    data, offsets = utf8_buffers(texts)
    decompose, digit = _needs_form(data, offsets)
    for flags, transform in ((decompose, _strip_accents), (digit, _zero_digits)):
        if flags.any():
            mask = pa.array(flags)
            texts = pc.replace_with_mask(texts, mask, transform(texts.filter(mask)).cast(texts.type))
    return texts


def _strip_accents(texts: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(pc.utf8_normalize(texts, form="NFKD"), r"\p{Mn}+", "")


def _zero_digits(texts: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(texts, r"\p{Nd}", "0")


def _line_bounds(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Byte start and end of every line of every document (in order) and each document's first line."""
    newlines = np.flatnonzero(data == 10)
    n_docs = offsets.size - 1
    per_doc = np.diff(np.searchsorted(newlines, offsets)) + 1
    first = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(per_doc, out=first[1:])
    total = int(first[-1])
    is_first = np.zeros(total, dtype=bool)
    is_first[first[:-1]] = True
    starts = np.empty(total, dtype=np.int64)
    starts[first[:-1]] = offsets[:-1]
    starts[~is_first] = newlines + 1
    is_last = np.zeros(total, dtype=bool)
    is_last[first[1:] - 1] = True
    ends = np.empty(total, dtype=np.int64)
    ends[is_last] = offsets[1:]
    ends[~is_last] = newlines
    return starts, ends, first


class _CharCount:
    """Characters before a byte position (position minus the UTF-8 continuation bytes before it), so a
    span's length is a difference; only continuation bytes are stored (none for ASCII text)."""

    def __init__(self, data: np.ndarray) -> None:
        self.continuation = np.flatnonzero((data & 0xC0) == 0x80)

    def __getitem__(self, positions: np.ndarray) -> np.ndarray:
        if self.continuation.size == 0:
            return positions
        return positions - np.searchsorted(self.continuation, positions)


def _units_of_slice(raw: pa.Array, norm: pa.Array, unit: str) -> Units:
    raw_data, raw_offsets = utf8_buffers(raw)
    raw_start, raw_end, line_first = _line_bounds(raw_data, raw_offsets)
    raw_chars = _CharCount(raw_data)
    line_chars = raw_chars[raw_end] - raw_chars[raw_start]
    if norm is raw:
        data, offsets, line_start = raw_data, raw_offsets, raw_start
    else:
        data, offsets = utf8_buffers(norm)
        line_start = _line_bounds(data, offsets)[0]
        if raw_start.size != line_start.size:  # dedup_form keeps newlines; this would be a bug
            raise AssertionError("normalisation changed the number of lines")
    n_docs = offsets.size - 1

    buf, mask = _normalise_bytes(data)
    text = buf[: data.size]
    text[(text >= 0x31) & (text <= 0x39)] = 0x30  # ASCII digits to 0
    starts, ends, _ = _word_spans(mask, offsets)
    word_line = np.searchsorted(line_start, starts, side="right") - 1
    n_lines = line_start.size
    has_words = np.bincount(word_line, minlength=n_lines) > 0
    if unit == "line":
        opens = has_words
    else:
        previous = np.concatenate([[False], has_words[:-1]])
        previous[line_first[:-1]] = False
        opens = has_words & ~previous
    unit_of_line = np.cumsum(opens) - 1
    n_units = int(opens.sum())
    first_line = np.flatnonzero(opens)
    if unit == "line":
        closes = has_words
    else:
        following = np.concatenate([has_words[1:], [False]])
        following[line_first[1:] - 1] = False
        closes = has_words & ~following
    last_line = np.flatnonzero(closes)
    line_doc = np.repeat(np.arange(n_docs), np.diff(line_first))
    doc_chars = np.bincount(line_doc, weights=np.where(has_words, line_chars, 0), minlength=n_docs)
    if n_units == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Units(empty, empty.astype(np.uint64), empty, empty, empty, empty, doc_chars.astype(np.int64))

    word_unit = unit_of_line[word_line]
    first_word = np.flatnonzero(np.diff(word_unit, prepend=-1))  # every unit has a word
    n_words = np.diff(np.append(first_word, word_unit.size))
    position = np.arange(word_unit.size) - first_word[word_unit]
    keys = _hash_keys(_SEED, 1)
    mixed = _word_hashes(buf, starts, ends, keys.word_seed)
    mixed += (position + 1).astype(np.uint64) * np.uint64(_POSITION_MULT)
    _fmix64(mixed)
    summed = np.add.reduceat(mixed, first_word)
    summed += n_words.astype(np.uint64) * np.uint64(_LENGTH_MULT)
    summed ^= np.uint64(keys.shingle_seed)
    unit_hash = _fmix64(summed)

    # normalised length: word bytes minus the continuation bytes inside words, plus one space between words
    word_continuation = np.flatnonzero(mask[1:-1] & ((text & 0xC0) == 0x80))
    continuation_line = np.searchsorted(line_start, word_continuation, side="right") - 1
    word_bytes = np.add.reduceat(ends - starts, first_word)
    norm_chars = word_bytes - np.bincount(unit_of_line[continuation_line], minlength=n_units) + n_words - 1
    line_total = np.zeros(n_lines + 1, dtype=np.int64)
    np.cumsum(line_chars, out=line_total[1:])
    chars = line_total[last_line + 1] - line_total[first_line]
    doc = line_doc[first_line]
    return Units(
        doc,
        unit_hash,
        first_line - line_first[doc],
        last_line - line_first[doc],
        norm_chars,
        chars,
        doc_chars.astype(np.int64),
    )


def _slices(texts: pa.Array) -> Iterator[tuple[int, int]]:
    _, offsets = utf8_buffers(texts)
    yield from _sub_batches(offsets, _BATCH_BYTES)


def units(texts: pa.Array | pa.ChunkedArray | list[str], unit: str = "line") -> Units:
    """Every unit of every document, with its hash; sub-batches of ~1 MB keep the work arrays in cache."""
    raw = as_text_array(texts)
    parts: list[Units] = []
    for lo, hi in _slices(raw):
        part = raw.slice(lo, hi - lo)
        if hi - lo == 1 and part.nbytes > _BATCH_BYTES:
            found = _long_document_units(part, unit)
        else:
            found = _units_of_slice(part, dedup_form(part), unit)
        parts.append(Units(found.doc + lo, *(getattr(found, f) for f in _FIELDS[1:])))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Units(empty, empty.astype(np.uint64), empty, empty, empty, empty, empty)
    return Units(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("doc", "hash", "first_line", "last_line", "norm_chars", "chars", "doc_chars")

_CUTS = {"line": re.compile(rb"\n"), "paragraph": re.compile(rb"\n(?=\n)")}
"""Where a long document may be cut: after any newline for lines; between two newlines (after a line
without words, which no paragraph spans) for paragraphs."""


def _long_document_units(text: pa.Array, unit: str) -> Units:
    """The units of one long document, window by window (windows of about a MB end with a newline, so
    no unit spans two), with line numbers and character counts added up across windows. A window ending
    in a newline has one more, empty, line: it holds no words, so it makes no unit and no characters."""
    data, _ = utf8_buffers(text)
    found: list[Units] = []
    lines_before = 0
    for window in _line_windows(data, _CUTS[unit], _BATCH_BYTES):
        part = pa.array([window.tobytes().decode("utf-8")], pa.large_string())
        units_of = _units_of_slice(part, dedup_form(part), unit)
        found.append(
            Units(
                units_of.doc,
                units_of.hash,
                units_of.first_line + lines_before,
                units_of.last_line + lines_before,
                units_of.norm_chars,
                units_of.chars,
                units_of.doc_chars,
            )
        )
        lines_before += int(np.count_nonzero(window == 10))
    merged = [np.concatenate([getattr(u, f) for u in found]) for f in _FIELDS[:-1]]
    return Units(*merged, np.sum([u.doc_chars for u in found], axis=0).astype(np.int64))


def _line_windows(data: np.ndarray, cut: re.Pattern[bytes], size: int) -> Iterator[np.ndarray]:
    start = 0
    while data.size - start > size:
        match = cut.search(data, start + size)
        if match is None:
            break
        yield data[start : match.end()]
        start = match.end()
    yield data[start:]


def unit_sketch(kept: pa.Table, config: ParagraphConfig) -> pa.Table:
    """One row per countable unit (normalised length >= min_chars) of every kept document of a batch."""
    found = units(kept.column("text"), config.unit)
    countable = found.select(found.norm_chars >= config.min_chars)
    rows = pa.array(countable.doc)
    domain = pc.fill_null(kept.column("domain"), UNASSIGNED_DOMAIN)  # the writer's partition name
    return pa.Table.from_pydict(
        {
            "id": kept.column("id").take(rows),
            "source": kept.column("source").take(rows),
            "domain": domain.take(rows),
            "hash": pa.array(countable.hash, pa.uint64()),
            "chars": pa.array(countable.chars, pa.int32()),
            "doc_chars": pa.array(found.doc_chars[countable.doc], pa.int64()),
        },
        schema=UNIT_SCHEMA,
    )


def with_zero_counts(kept: pa.Table) -> pa.Table:
    """Kept documents start with nothing removed; the dedup phase fills in the documents it strips."""
    zeros = pa.array(np.zeros(kept.num_rows, dtype=np.int64))
    for field in COUNT_FIELDS:
        if field.name not in kept.column_names:
            kept = kept.append_column(field, zeros)
    return kept


def strip_documents(texts: list[str], remove: list[np.ndarray], unit: str) -> list[str]:
    """Each text without its units whose hash is in the matching sorted array of `remove`.

    A removed unit takes the blank lines after it along (or, when nothing written follows it, the blank
    lines before it), so no gap is left where it stood and two paragraphs never merge. Stripping is a
    fixed point: stripping the result again removes nothing, which makes re-applying after a crash safe.
    """
    found = units(texts, unit)
    out = list(texts)
    bounds = np.searchsorted(found.doc, np.arange(len(texts) + 1))
    for i, hashes in enumerate(remove):
        lo, hi = bounds[i], bounds[i + 1]
        if hashes.size == 0 or lo == hi:
            continue
        unit_hashes = found.hash[lo:hi]
        pos = np.minimum(np.searchsorted(hashes, unit_hashes), hashes.size - 1)
        hit = np.flatnonzero(hashes[pos] == unit_hashes)
        if hit.size:
            first, last = found.first_line[lo:hi][hit].tolist(), found.last_line[lo:hi][hit].tolist()
            spans = list(zip(first, last, strict=True))
            out[i] = _drop_lines(texts[i], spans)
    return out


def _drop_lines(text: str, spans: list[tuple[int, int]]) -> str:
    lines = text.split("\n")
    drop = [False] * len(lines)
    for first, last in spans:
        drop[first : last + 1] = [True] * (last + 1 - first)
    blank = [not line.strip() for line in lines]
    written_after = [False] * (len(lines) + 1)  # a kept line with text at index >= k
    for k in range(len(lines) - 1, -1, -1):
        written_after[k] = written_after[k + 1] or (not drop[k] and not blank[k])
    for first, last in spans:
        k = last + 1
        while k < len(lines) and blank[k] and not drop[k]:
            drop[k] = True
            k += 1
        if not written_after[last + 1]:
            k = first - 1
            while k >= 0 and blank[k] and not drop[k]:
                drop[k] = True
                k -= 1
    return "\n".join(line for line, gone in zip(lines, drop, strict=True) if not gone)

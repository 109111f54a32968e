"""Arrow string arrays of a chunk's lines, and predicates on them that mean exactly what Python's `str`
methods mean (whitespace is `str.isspace`, lines are `str.splitlines` or '\\n' splits).

Kernels that run per line carry a fixed cost per line, so the cheap ones are preferred: a line's last
character is read from its last UTF-8 byte (an ASCII character is one byte; only lines ending in a
non-ASCII byte are sliced), and "at least k words" is one regex anchored at the start that stops at the
k-th word instead of counting every word.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.rules.settings import LINE_BREAKS_RE, OTHER_LINE_BREAKS, WHITESPACE, WHITESPACE_CLASS

SPACE, VISIBLE = f"[{WHITESPACE_CLASS}]", f"[^{WHITESPACE_CLASS}]"


@dataclass
class LineSplit:
    """The lines of a chunk's documents, flattened in document order, with the document of each."""

    lines: pa.Array  # large_string
    offsets: np.ndarray  # lines of document i are offsets[i]:offsets[i + 1]
    docs: np.ndarray  # the document of each line

    @classmethod
    def at(cls, texts: pa.Array, pattern: str, regex: bool = False) -> LineSplit:
        split = pc.split_pattern_regex(texts, pattern) if regex else pc.split_pattern(texts, pattern)
        offsets = np.asarray(split.offsets, dtype=np.int64)
        return cls(split.flatten(), offsets, np.repeat(np.arange(len(texts)), np.diff(offsets)))

    @classmethod
    def splitlines(cls, texts: Sequence[str], array: pa.Array, at_newlines: LineSplit | None) -> LineSplit:
        """Lines as `str.splitlines()` breaks them (plus an empty last line after a final break): the
        split at '\\n' unless a document holds another line break, whose documents get the regex."""
        other = np.fromiter(map(_has_other_breaks, texts), dtype=bool, count=len(texts))
        if not other.any():
            return at_newlines if at_newlines is not None else cls.at(array, "\n")
        parts = [(np.flatnonzero(~other), "\n", False), (np.flatnonzero(other), LINE_BREAKS_RE, True)]
        splits = [(which, cls.at(array.take(which), pattern, regex)) for which, pattern, regex in parts]
        docs = np.concatenate([which[split.docs] for which, split in splits])
        order = np.argsort(docs, kind="stable")
        lines = pa.concat_arrays([split.lines for _, split in splits]).take(order)
        offsets = np.r_[0, np.cumsum(np.bincount(docs, minlength=len(texts)))]
        return cls(lines, offsets, docs[order])

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    def per_doc(self, values: np.ndarray) -> np.ndarray:
        """Sum of a per-line array (bool or int) within each document."""
        return np.bincount(self.docs, weights=values, minlength=self.n_docs).astype(np.int64)


def _has_other_breaks(text: str) -> bool:
    return any(char in text for char in OTHER_LINE_BREAKS)


def ends_with_char(lines: pa.Array, chars: Iterable[str]) -> np.ndarray:
    """Whether each line's last character is one of `chars` (never for an empty line)."""
    chars = sorted(set(chars))
    last = _edge_bytes(lines, last=True)
    out = np.isin(last, [ord(char) for char in chars if char.isascii()])
    wide = [char for char in chars if not char.isascii()]
    maybe = np.flatnonzero(last >= 0x80) if wide else []
    if len(maybe):
        ends = pc.utf8_slice_codeunits(lines.take(maybe), -1)
        out[maybe] = np.asarray(pc.is_in(ends, pa.array(wide, lines.type)), dtype=bool)
    return out


def _edge_bytes(lines: pa.Array, last: bool) -> np.ndarray:
    """The first or last UTF-8 byte of each line of a large_string array, -1 for an empty line."""
    _, offsets, data = lines.buffers()
    ends = np.frombuffer(offsets, dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    out = np.full(len(lines), -1, dtype=np.int16)
    filled = ends[1:] > ends[:-1]
    if filled.any():
        at = ends[1:][filled] - 1 if last else ends[:-1][filled]
        out[filled] = np.frombuffer(data, dtype=np.uint8)[at]
    return out


def _may_be_space(edge_bytes: np.ndarray) -> np.ndarray:
    """Whether a character with this first (or last) UTF-8 byte may be whitespace: ASCII whitespace or
    any byte of a multi-byte character (\\xa0, \\u2003, \\u3000...)."""
    return np.isin(edge_bytes, _ASCII_SPACE_BYTES) | (edge_bytes >= 0x80)


_ASCII_SPACE_BYTES = [ord(char) for char in WHITESPACE if char.isascii()]


def matches(lines: pa.Array, pattern: str, maybe: np.ndarray) -> np.ndarray:
    """The RE2 `pattern` searched only in the lines where `maybe` (False elsewhere)."""
    out = np.zeros(len(lines), dtype=bool)
    which = np.flatnonzero(maybe)
    if len(which):
        out[which] = np.asarray(pc.match_substring_regex(lines.take(which), pattern), dtype=bool)
    return out


def is_blank(lines: pa.Array) -> np.ndarray:
    """`not line or line.isspace()`: empty, or only whitespace (which a line ending otherwise is not)."""
    last = _edge_bytes(lines, last=True)
    return (last < 0) | matches(lines, f"^{SPACE}*$", _may_be_space(last))


def starts_after_space(lines: pa.Array, chars: str) -> np.ndarray:
    """`line.lstrip().startswith(tuple(chars))` for single characters."""
    first = _edge_bytes(lines, last=False)
    maybe = _may_be_space(first) | np.isin(first, [ord(char) for char in chars if char.isascii()])
    return matches(lines, f"^{SPACE}*[{re.escape(chars)}]", maybe)


def ends_before_space(lines: pa.Array, endings: Sequence[str]) -> np.ndarray:
    """`line.rstrip().endswith(tuple(endings))`."""
    last = _edge_bytes(lines, last=True)
    maybe = np.flatnonzero(_may_be_space(last) | np.isin(last, [ord(e[-1]) for e in endings]))
    out = np.zeros(len(lines), dtype=bool)
    if len(maybe):
        trimmed = pc.utf8_rtrim(lines.take(maybe), characters=WHITESPACE)
        hits = [np.asarray(pc.ends_with(trimmed, ending), dtype=bool) for ending in endings]
        out[maybe] = np.logical_or.reduce(hits)
    return out


def at_least_words(lines: pa.Array, count: int, char_words: np.ndarray) -> np.ndarray:
    """`len(line.split()) >= count`, or for an unspaced language's line its visible characters."""
    words = f"^{SPACE}*" + f"{VISIBLE}+{SPACE}+" * (count - 1) + VISIBLE
    out = np.asarray(pc.match_substring_regex(lines, words), dtype=bool)
    if char_words.any():
        chars = f"^(?:{SPACE}*{VISIBLE})" + "{" + str(count) + "}"
        out = np.where(char_words, np.asarray(pc.match_substring_regex(lines, chars), dtype=bool), out)
    return out


def repeats(docs: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """True where an element's id equals an earlier element's of the same document (hash tables, no sort:
    dictionary codes come in order of first appearance, so a new one exceeds every code before it)."""
    out = np.zeros(len(ids), dtype=bool)
    maybe = np.flatnonzero(np.bincount(ids)[ids] >= 2) if len(ids) else ids  # an id seen once is new
    if len(maybe):
        keys = docs[maybe] * (int(ids.max()) + 1) + ids[maybe]
        pairs = np.asarray(pc.dictionary_encode(pa.array(keys)).indices)
        first = np.ones(len(pairs), dtype=bool)
        first[1:] = pairs[1:] > np.maximum.accumulate(pairs)[:-1]
        out[maybe] = ~first
    return out


def string_ids(strings: pa.Array) -> np.ndarray:
    """An id per string, equal for equal strings (a hash table over the chunk's strings, no sort)."""
    return np.asarray(pc.dictionary_encode(strings).indices, dtype=np.int64)

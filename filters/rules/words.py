"""Words as spaCy's English tokenizer would split them (see `tokenizer`), found in compiled loops over the
code points of a batch (no Python object per token), each token a 64-bit hash with its length and class
bits.

Long documents are tokenized in ~1M-character windows cut at whitespace, so memory follows a small
constant per character."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numba
import numpy as np

from curate.textwindows import whitespace_windows
from filters.rules.charclasses import _lowercase, _unicode_tables, astral_flags
from filters.rules.tokenizer import segment_hashes, substring_hashes, window_tokens, window_word_runs


def hash_strings(strings: Sequence[str], lower: bool = False) -> np.ndarray:
    """The token hash each whole string would get (lowercased first if `lower`)."""
    strings = list(strings)
    if not strings:
        return np.zeros(0, dtype=np.uint64)
    code_points = _code_points("".join(strings))
    if lower:
        code_points = _lowercase(code_points)
    starts = np.r_[0, np.cumsum([len(s) for s in strings])[:-1]].astype(np.int64)
    return segment_hashes(code_points, starts)


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@dataclass
class TokenTable:
    """Every token of a chunk of documents as flat numpy arrays, with per-document offsets.

    The per-character work (code points, class bits, the tokenizer's state and its output before it is
    trimmed: ~40 bytes per character) runs on windows of about a million characters cut at whitespace,
    which no token spans, so a 50 MB document costs the
    per-character arrays of one window; what is kept is 14 bytes per token.
    """

    offsets: np.ndarray  # int64, n_docs + 1: tokens of doc i are offsets[i]:offsets[i + 1]
    hashes: np.ndarray  # uint64 per token: equal tokens, equal hashes
    lengths: np.ndarray  # int32 characters per token
    has_letter: np.ndarray  # bool: the token contains a letter (str.isalpha on some char)
    is_word: np.ndarray  # bool: the token contains a char that is not punctuation/symbol/control
    text: str = field(repr=False)  # the chunk's text, docs joined by '\n'
    doc_char_starts: np.ndarray = field(repr=False)  # where each doc starts in text (+ end)
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_texts(
        cls, texts: Sequence[str], split_unspaced: bool = False, word_runs: bool = False
    ) -> TokenTable:
        """Tokens of the texts; `split_unspaced` makes each letter of a script written without spaces
        (CJK, kana, Thai, Lao, Khmer, Myanmar) a word of its own, for documents in such a language.
        `word_runs`: find the word runs too (see `word_runs`), from the same code points."""
        text = "\n".join(texts)
        doc_char_starts = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)) + 1, out=doc_char_starts[1:])
        parts = [
            _window_tokens(text[a:b], a, doc_char_starts, split_unspaced, word_runs)
            for a, b in whitespace_windows(text)
        ]
        table = cls(
            offsets=_offsets_of([p[0] for p in parts]),
            hashes=np.concatenate([p[1] for p in parts]),
            lengths=np.concatenate([p[2] for p in parts]),
            has_letter=np.concatenate([p[3] for p in parts]),
            is_word=np.concatenate([p[4] for p in parts]),
            text=text,
            doc_char_starts=doc_char_starts,
        )
        if word_runs:
            runs = [p[5] for p in parts]
            table._cache["word_runs"] = (
                np.concatenate([r[1] for r in runs]),
                _offsets_of([r[0] for r in runs]),
            )
        return table

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def doc_of(self, positions: np.ndarray) -> np.ndarray:
        """The document of each token position (looked up in the offsets: nothing stored per token)."""
        return np.searchsorted(self.offsets, positions, side="right") - 1

    def per_doc_sum(self, token_values: np.ndarray) -> np.ndarray:
        """Sum a per-token array within each document (cumsum differences: empty documents give 0)."""
        return _sum_per_segment(token_values, self.offsets)

    def word_runs(self) -> tuple[np.ndarray, np.ndarray]:
        """(hash of each lowercased maximal run of word chars, per-doc run offsets): C4's \\w+ runs.

        Bad words are matched on these, as C4's regex requires non-word characters around a bad word.
        """
        if "word_runs" not in self._cache:
            starts = self.doc_char_starts
            parts = [_window_word_runs(self.text[a:b], a, starts) for a, b in whitespace_windows(self.text)]
            hashes = np.concatenate([p[1] for p in parts])
            self._cache["word_runs"] = (hashes, _offsets_of([p[0] for p in parts]))
        return self._cache["word_runs"]


def _window_tokens(
    window: str, base: int, doc_char_starts: np.ndarray, split_unspaced: bool = False, word_runs: bool = False
) -> tuple:
    """(tokens before each document start, then per token: hash, length, has_letter, is_word, and with
    `word_runs` the window's word runs) of one window starting at character `base` of the chunk."""
    code_points = _code_points(window)
    flag_table, lower_table = _unicode_tables()
    starts, hashes, lengths, classes, run_starts, run_hashes = window_tokens(
        code_points, flag_table, lower_table, *astral_flags(code_points), split_unspaced, word_runs
    )
    runs = ((_items_before(run_starts + base, doc_char_starts), run_hashes),) if word_runs else ()
    return (
        _items_before(starts + base, doc_char_starts),
        hashes,
        lengths,
        (classes & 1) != 0,
        (classes & 2) != 0,
        *runs,
    )


def compile_kernels() -> None:
    """Compile (or load from numba's cache) the loops a worker may need that a short English text does
    not reach: word runs of a long document alone, substrings of an unspaced script's bad words."""
    code_points = _code_points("warm up 日本")
    _window_word_runs("warm up 日本", 0, np.array([0, 11], dtype=np.int64))
    substring_hashes(code_points, 2, 3)
    TokenTable.from_texts(["日本語"], split_unspaced=True)


def _window_word_runs(window: str, base: int, doc_char_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(runs before each document start, hash of each lowercased run) of the maximal runs of word chars
    of one window."""
    code_points = _code_points(window)
    flag_table, lower_table = _unicode_tables()
    starts, hashes = window_word_runs(code_points, flag_table, lower_table, *astral_flags(code_points))
    return _items_before(starts + base, doc_char_starts), hashes


def _items_before(item_starts: np.ndarray, doc_char_starts: np.ndarray) -> np.ndarray:
    """How many of a window's items (tokens, word runs) start before each document start, and in all."""
    before = np.searchsorted(item_starts, doc_char_starts).astype(np.int64)
    before[-1] = len(item_starts)
    return before


def _offsets_of(window_counts: list[np.ndarray]) -> np.ndarray:
    """Per-document item offsets of a chunk: the windows' `_items_before` summed."""
    return np.sum(window_counts, axis=0, dtype=np.int64)


def tokenize(text: str, split_unspaced: bool = False) -> list[str]:
    """The tokens of one text as strings: for tests and debugging (the rules never build strings)."""
    table = TokenTable.from_texts([text], split_unspaced)
    visible = [i for i, char in enumerate(text) if not char.isspace()]
    starts = np.r_[0, np.cumsum(table.lengths)[:-1]].astype(np.int64)
    return ["".join(text[i] for i in visible[a : a + n]) for a, n in zip(starts, table.lengths, strict=True)]


def _sum_per_segment(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    dtype = np.float64 if values.dtype.kind == "f" else np.int64
    cumulative = np.zeros(len(values) + 1, dtype=dtype)
    np.cumsum(values, out=cumulative[1:])
    return cumulative[offsets[1:]] - cumulative[offsets[:-1]]


class HashSet:
    """Membership of token hashes in a small fixed set (stop words, bad words): an open-addressing hash
    table at most a quarter full, small enough to stay in cache, probed once per token (np.isin would
    sort all tokens instead)."""

    def __init__(self, hashes: np.ndarray) -> None:
        self.sorted = np.unique(hashes)
        self.table_bits = max(4, int(len(self.sorted)).bit_length() + 2)
        self.slot_index = _table_of(self.sorted, self.table_bits)
        self.slot_keys = self.sorted[np.maximum(self.slot_index, 0)] if len(self.sorted) else self.sorted

    def __len__(self) -> int:
        return len(self.sorted)

    def hits(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions of the values in the set, their index in `self.sorted`)."""
        return _set_hits(values, self.slot_keys, self.slot_index, self.table_bits)


_SLOT_MIX = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True)
def _table_of(sorted_keys, table_bits):
    """Linear-probing table: the index in sorted_keys of the key in each slot, -1 for an empty one."""
    index = np.full(1 << table_bits, -1, dtype=np.int64)
    shift, mask = np.uint64(64 - table_bits), (1 << table_bits) - 1
    for k in range(len(sorted_keys)):
        slot = np.int64((sorted_keys[k] * _SLOT_MIX) >> shift)
        while index[slot] >= 0:
            slot = (slot + 1) & mask
        index[slot] = k
    return index


@numba.njit(cache=True)
def _set_hits(values, slot_keys, slot_index, table_bits):
    """`HashSet.hits` in one pass over blocks of values: each block's hits go to fixed buffers (a tight
    loop), then onto outputs grown by doubling (no per-value temporary)."""
    block = 1 << 16
    positions, which = np.empty(block, dtype=np.int64), np.empty(block, dtype=np.int64)
    found_at, found = np.empty(block, dtype=np.int64), np.empty(block, dtype=np.int64)
    count, shift, mask = 0, np.uint64(64 - table_bits), (1 << table_bits) - 1
    for start in range(0, len(values), block):
        in_block = 0
        for i in range(start, min(start + block, len(values))):
            slot = np.int64((values[i] * _SLOT_MIX) >> shift)
            while slot_index[slot] >= 0 and slot_keys[slot] != values[i]:
                slot = (slot + 1) & mask
            found_at[in_block], found[in_block] = i, slot_index[slot]
            in_block += slot_index[slot] >= 0
        while count + in_block > len(positions):
            positions, which = _doubled(positions), _doubled(which)
        positions[count : count + in_block] = found_at[:in_block]
        which[count : count + in_block] = found[:in_block]
        count += in_block
    return positions[:count].copy(), which[:count].copy()


@numba.njit(cache=True)
def _doubled(array):
    out = np.empty(2 * len(array), dtype=array.dtype)
    out[: len(array)] = array
    return out


def distinct_stop_words(
    tokens: TokenTable, stop_words: HashSet, start: int = 0, stop: int | None = None
) -> np.ndarray:
    """How many distinct stop words (exact, case-sensitive tokens) each document of start:stop contains
    (all documents by default; one language's run of documents when the batch is grouped by language)."""
    stop = tokens.n_docs if stop is None else stop
    offsets = tokens.offsets[start : stop + 1]
    hits, which = stop_words.hits(tokens.hashes[offsets[0] : offsets[-1]])
    return _distinct_per_segment(hits, which, offsets - offsets[0], len(stop_words))


@numba.njit(cache=True)
def _distinct_per_segment(positions, which, offsets, n_values):
    """How many distinct `which` values the (increasing) positions of each segment of offsets hold."""
    last_segment = np.full(n_values, -1, dtype=np.int64)
    out = np.zeros(len(offsets) - 1, dtype=np.int64)
    segment = 0
    for k in range(len(positions)):
        while offsets[segment + 1] <= positions[k]:
            segment += 1
        if last_segment[which[k]] != segment:
            last_segment[which[k]] = segment
            out[segment] += 1
    return out

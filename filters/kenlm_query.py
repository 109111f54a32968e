"""KenLM's probing binary model read into memory and queried by compiled (numba) code: the scores of
`kenlm.Model.score(line)` (sentence markers on), for a whole batch of lines in one call.

Why not kenlm's Python module: it is called once per line, splits each line into Python bytes objects,
and asks the model's hash tables one n-gram after another, so nearly every lookup waits on a cache miss
(~200 ns per word). Here a line's word ids are found first, then the table slots of the n-grams that
word `t + FETCH_AHEAD` could need are requested while word `t` is scored: the misses overlap. Scores are
KenLM's bit for bit (tests/filters/test_kenlm_query.py compares them with the kenlm module's on real text).

What is read (KenLM's binary format 5, `build_binary` with the default `probing` structure, as
`curate models train-lm` writes it): a header (order, probing multiplier, n-gram counts), the vocabulary
(a linear-probing table of MurmurHash64A word hashes -> word ids), the unigrams (log10 prob, backoff), one
linear-probing table per middle order (key, prob, backoff) and one for the highest order (key, prob). An
n-gram's key combines its word ids, newest first (`_combine`). The sign bit of a stored prob says that no
longer n-gram extends the word to the left ("independent left"); a backoff of -0.0 says that no longer
n-gram extends it to the right, so the context kept for the next word is shortened. Scoring follows
KenLM's `ScoreExceptBackoff` / `ResumeScore` / `FullScore` with float32 arithmetic in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np

from curate.random_reads import fetch, on_huge_pages
from filters.model_files import (
    LONGEST_ENTRY,
    MIDDLE_ENTRY,
    VOCAB_ENTRY,
    VOCAB_HEADER_BYTES,
    kenlm_layout,
    table_buckets,
)

NO_EXTENSION = 0x80000000
"""The bits of a backoff of -0.0: nothing extends this n-gram to the right."""
FETCH_AHEAD = 6
"""Words between the one whose table slots are requested and the one being scored."""
CHUNK_BYTES = 1 << 20
"""Lines are read in groups of about this many bytes (a longer line alone): the word ids held at once."""
READ_INTO_MEMORY_MAX_BYTES = 1 << 30
"""A model up to this size is copied into the process's memory on huge pages (random reads then miss
the TLB less); a larger one is memory-mapped, so the workers of one machine share it in the page cache."""


@dataclass(frozen=True)
class ProbingLm:
    """A probing KenLM model: its bytes (as 32-bit words) and where each table starts in them."""

    words: np.ndarray
    """The model file from its vocabulary on, as little-endian u32 (f32 fields are viewed from it)."""
    order: int
    tables: np.ndarray
    """Per table (vocabulary, unigrams, middle orders..., longest): [start in `words`, buckets]."""
    begin_sentence: int
    end_sentence: int

    @classmethod
    def load(cls, path: str) -> ProbingLm:
        layout = kenlm_layout(path)
        words = _read(path, layout.end)[layout.header :].view(np.uint32)
        starts = np.cumsum([0, *layout.sizes[:-1]]) // 4
        counts, multiplier = layout.counts, layout.multiplier
        buckets = [table_buckets(counts[0], multiplier), counts[0] + 1]
        buckets += [table_buckets(count, multiplier) for count in counts[1:]]
        tables = np.array(list(zip(starts, buckets, strict=True)), dtype=np.int64)
        tables[0, 0] += VOCAB_HEADER_BYTES // 4
        bos, eos = (_word_id(words, tables, _token_hash(word)) for word in (b"<s>", b"</s>"))
        return cls(words, len(counts), tables, bos, eos)

    @cached_property
    def floats(self) -> np.ndarray:
        return self.words.view(np.float32)

    def line_scores(self, data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """log10 P of each line data[offsets[i]:offsets[i + 1]] with <s> and </s>, as kenlm's `score`."""
        model = (self.words, self.floats, self.tables, self.order, self.begin_sentence, self.end_sentence)
        return _score_lines(data, offsets, *model)

    def score(self, line: str) -> float:
        """One line (tests and corpus figures; batches use `line_scores`)."""
        data = np.frombuffer(line.encode("utf-8"), np.uint8)
        return float(self.line_scores(data, np.array([0, len(data)], dtype=np.int64))[0])


def _read(path: str, length: int) -> np.ndarray:
    if length > READ_INTO_MEMORY_MAX_BYTES:
        return np.memmap(path, dtype=np.uint8, mode="r", shape=(length,))
    return on_huge_pages(np.fromfile(path, dtype=np.uint8, count=length))


def _token_hash(word: bytes) -> int:
    return _murmur64a(np.frombuffer(word, np.uint8), 0, len(word))


@numba.njit(cache=True)
def _murmur64a(data, start, end):
    """MurmurHash64A (seed 0) of data[start:end]: KenLM's vocabulary hash."""
    m, r = np.uint64(0xC6A4A7935BD1E995), np.uint64(47)
    h = np.uint64(end - start) * m
    i = start
    while i + 8 <= end:
        k = np.uint64(0)
        for j in range(8):
            k |= np.uint64(data[i + j]) << np.uint64(8 * j)
        k *= m
        k ^= k >> r
        k *= m
        h ^= k
        h *= m
        i += 8
    if i < end:
        for j in range(end - i):
            h ^= np.uint64(data[i + j]) << np.uint64(8 * j)
        h *= m
    h ^= h >> r
    h *= m
    return h ^ (h >> r)


@numba.njit(cache=True)
def _combine(node, word):
    """KenLM's key of an n-gram from the key of its newest words and the next older word."""
    return node * np.uint64(8978948897894561157) ^ (np.uint64(1 + word) * np.uint64(17894857484156487943))


@numba.njit(cache=True)
def _key(words, entry):
    return np.uint64(words[entry]) | (np.uint64(words[entry + 1]) << np.uint64(32))


@numba.njit(cache=True)
def _find(words, start, buckets, stride, key):
    """The word offset of `key`'s entry in a linear-probing table, -1 when absent (key 0: empty slot)."""
    slot = np.int64(key % np.uint64(buckets))
    while True:
        entry = start + slot * stride
        found = _key(words, entry)
        if found == key:
            return entry
        if found == 0:
            return -1
        slot = slot + 1 if slot + 1 < buckets else 0


@numba.njit(cache=True)
def _word_id(words, tables, h):
    entry = _find(words, tables[0, 0], tables[0, 1], VOCAB_ENTRY // 4, h)
    return 0 if entry < 0 else np.int64(words[entry + 2])  # absent: <unk>


@numba.njit(cache=True)
def _is_space(byte):
    return byte == 32 or (9 <= byte <= 13)  # bytes.split()'s ASCII whitespace


@numba.njit(cache=True)
def _fetch_ngrams(words, tables, order, ids, positions, t, begin_sentence):
    """Request the table slots of every n-gram ending at ids[t] (its history: the words before it in
    its line, then <s>)."""
    fetch(words, tables[1, 0] + 2 * ids[t])
    node = np.uint64(ids[t])
    for k in range(min(order - 1, positions[t] + 1)):
        node = _combine(node, ids[t - 1 - k] if k < positions[t] else begin_sentence)
        table = k + 2
        stride = MIDDLE_ENTRY // 4 if table < order else LONGEST_ENTRY // 4
        slot = tables[table, 0] + np.int64(node % np.uint64(tables[table, 1])) * stride
        fetch(words, slot)
        fetch(words, min(slot + 16, len(words) - 1))  # a miss probes on, often into the next cache line


@numba.njit(cache=True)
def _line_ids(data, offsets, first, last, words, tables, end_sentence, ids, positions):
    """Word ids of lines first..last-1, each line closed by </s>, and each word's position in its line.
    A line of L bytes holds at most (L + 1) // 2 words, plus its </s>."""
    n = 0
    for line in range(first, last):
        i, end, position = offsets[line], offsets[line + 1], 0
        while i < end:
            while i < end and _is_space(data[i]):
                i += 1
            start = i
            while i < end and not _is_space(data[i]):
                i += 1
            if i > start:
                ids[n], positions[n] = _word_id(words, tables, _murmur64a(data, start, i)), position
                n, position = n + 1, position + 1
        ids[n], positions[n] = end_sentence, position
        n += 1
    return n


@numba.njit(cache=True)
def _score_lines(data, offsets, words, floats, tables, order, begin_sentence, end_sentence):
    """See the module docstring. Lines go in groups of about CHUNK_BYTES: their word ids first, then
    every word scored while the slots of the word FETCH_AHEAD later (in the same line or a next one)
    are requested. The state (context words newest first, their backoffs, its length) is KenLM's
    `State`; `total` is the float32 sum kenlm's `score` returns."""
    out = np.empty(len(offsets) - 1, dtype=np.float64)
    ids, positions = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    context, backoffs = np.zeros(order, dtype=np.int64), np.zeros(order, dtype=np.float32)
    new_context, new_backoffs = np.zeros(order, dtype=np.int64), np.zeros(order, dtype=np.float32)
    unigrams = tables[1, 0]
    first = 0
    while first < len(offsets) - 1:
        last = first + 1
        while last < len(offsets) - 1 and offsets[last + 1] - offsets[first] <= CHUNK_BYTES:
            last += 1
        capacity = (offsets[last] - offsets[first] + last - first) // 2 + (last - first) + 1  # see _line_ids
        if capacity > len(ids):
            ids, positions = np.empty(capacity, dtype=np.int64), np.empty(capacity, dtype=np.int64)
        n = _line_ids(data, offsets, first, last, words, tables, end_sentence, ids, positions)
        for t in range(min(FETCH_AHEAD, n)):
            _fetch_ngrams(words, tables, order, ids, positions, t, begin_sentence)
        line, total, length = first - 1, np.float32(0.0), 0
        for t in range(n):
            if t + FETCH_AHEAD < n:
                _fetch_ngrams(words, tables, order, ids, positions, t + FETCH_AHEAD, begin_sentence)
            if positions[t] == 0:  # a new line: close the last one, start from <s>
                if line >= first:
                    out[line] = total
                line, total = line + 1, np.float32(0.0)
                context[0], backoffs[0], length = begin_sentence, floats[unigrams + 2 * begin_sentence + 1], 1
            word = ids[t]
            independent = words[unigrams + 2 * word] >= NO_EXTENSION
            prob = -abs(floats[unigrams + 2 * word])
            new_backoffs[0] = floats[unigrams + 2 * word + 1]
            new_length = 1 if words[unigrams + 2 * word + 1] != NO_EXTENSION else 0
            matched = 1
            node = np.uint64(word)
            k = 0
            while k < length and not independent:
                node = _combine(node, context[k])
                table = k + 2
                if table == order:
                    independent = True
                    entry = _find(words, tables[table, 0], tables[table, 1], LONGEST_ENTRY // 4, node)
                    if entry >= 0:
                        prob, matched = floats[entry + 2], order
                    break
                entry = _find(words, tables[table, 0], tables[table, 1], MIDDLE_ENTRY // 4, node)
                if entry < 0:
                    break
                new_backoffs[k + 1] = floats[entry + 3]
                independent = words[entry + 2] >= NO_EXTENSION
                prob, matched = -abs(floats[entry + 2]), k + 2
                if words[entry + 3] != NO_EXTENSION:
                    new_length = matched
                k += 1
            for b in range(matched - 1, length):
                prob += backoffs[b]  # the backoffs of the context words the n-gram did not reach
            total += prob
            new_context[0] = word
            for c in range(1, new_length):
                new_context[c] = context[c - 1]
            context, new_context = new_context, context
            backoffs, new_backoffs = new_backoffs, backoffs
            length = new_length
        out[line] = total
        first = last
    return out

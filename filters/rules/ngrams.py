"""Gopher's n-gram repetition signals over token hashes: the top n-gram's character share for small n and
the share of characters in duplicated n-grams for larger n, found by grouping only repeated n-grams.

The walk over positions (extending each n-gram hash by a token, grouping equal hashes, DataTrove's
greedy duplicate scan) runs in compiled loops (numba), each one pass over the positions left."""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from filters.rules.words import TokenTable

_PART_KEYS = 1 << 18
"""Keys per part of `_repeated_groups`: each part gets its own small hash table (cache-resident)."""
_SLOT_MIX = np.uint64(0x9E3779B97F4A7C15)


def _repeated_groups(keys: np.ndarray, segments: np.ndarray | None = None) -> np.ndarray:
    """Group id of every key that occurs at least twice, numbered in order of first appearance (as
    Counter numbers them), and -1 for a key that occurs once (such an n-gram changes no measure).

    `segments`: bounds of runs of keys that never equal a key of another run (a document's n-grams,
    salted per document; default: one run). Each run is grouped with a hash table of its size, and a
    run longer than `_PART_KEYS` is split by the keys' top bits into parts of about that many (equal
    keys share a part), each with its own table: no hash table over every n-gram is ever built.
    """
    groups = np.empty(len(keys), dtype=np.int32 if len(keys) < 2**31 else np.int64)
    segments = np.array([0, len(keys)], dtype=np.int64) if segments is None else segments
    _group_segments(keys, segments, _PART_KEYS, groups)
    return groups


@numba.njit(cache=True)
def _group_segments(keys, segments, part_keys, groups):
    """Fill `groups` (see `_repeated_groups`) run by run, numbering on from the runs before."""
    table_bits = _table_bits(part_keys)
    slots = np.empty(1 << table_bits, dtype=groups.dtype)
    group_keys = np.empty(part_keys, dtype=np.uint64)
    group_sizes = np.empty(part_keys, dtype=np.int64)
    local = np.empty(part_keys, dtype=groups.dtype)
    identity = np.arange(part_keys).astype(groups.dtype)
    offset = 0
    for run in range(len(segments) - 1):
        start, stop = segments[run], segments[run + 1]
        if stop - start > part_keys:
            bits = 0
            while (part_keys << bits) < stop - start:
                bits += 1
            offset = _group_in_parts(keys[start:stop], bits, groups[start:stop], offset)
            continue
        members = identity[: stop - start]
        n_groups = _group_part(
            keys[start:stop], members, slots, _table_bits(stop - start), group_keys, group_sizes, local
        )
        offset = _number_repeated(group_sizes, n_groups, offset)
        for k in range(stop - start):
            groups[start + k] = group_sizes[local[k]]


@numba.njit(cache=True)
def _table_bits(size):
    """log2 of a hash table's slots for `size` keys (at most half full)."""
    bits = 1
    while (1 << bits) < 2 * size:
        bits += 1
    return bits


@numba.njit(cache=True)
def _number_repeated(group_sizes, n_groups, offset):
    """Turn each group's size into its id: offset, offset + 1, ... for the repeated groups in order, -1
    for a group seen once; returns the next id."""
    for g in range(n_groups):
        if group_sizes[g] >= 2:
            group_sizes[g] = offset
            offset += 1
        else:
            group_sizes[g] = -1
    return offset


@numba.njit(cache=True)
def _group_in_parts(keys, bits, groups, offset):
    """Fill `groups` part by part with provisional ids of the repeated keys, then renumber them from
    `offset` by first appearance in one pass in position order; returns the next id."""
    order, part_starts = _positions_by_part(keys, bits, np.empty_like(groups))
    longest = np.max(np.diff(part_starts)) if len(keys) else 0
    table_bits = _table_bits(longest)
    slots = np.empty(1 << table_bits, dtype=groups.dtype)
    group_keys = np.empty(longest, dtype=np.uint64)
    group_sizes = np.empty(longest, dtype=np.int64)
    local = np.empty(longest, dtype=groups.dtype)
    provisional = 0
    for part in range(len(part_starts) - 1):
        members = order[part_starts[part] : part_starts[part + 1]]
        n_groups = _group_part(keys, members, slots, table_bits, group_keys, group_sizes, local)
        provisional = _number_repeated(group_sizes, n_groups, provisional)
        for k in range(len(members)):
            groups[members[k]] = group_sizes[local[k]]
    return _number_by_first_appearance(groups, provisional, offset)


@numba.njit(cache=True)
def _positions_by_part(keys, bits, order):
    """(`order` filled with the positions grouped by part, increasing within a part; where each part
    starts): a counting sort on the keys' top `bits` bits."""
    part_starts = np.zeros((1 << bits) + 1, dtype=np.int64)
    for i in range(len(keys)):
        part_starts[_top_bits(keys[i], bits) + 1] += 1
    part_starts = np.cumsum(part_starts)
    fill = part_starts[:-1].copy()
    for i in range(len(keys)):
        part = _top_bits(keys[i], bits)
        order[fill[part]] = i
        fill[part] += 1
    return order, part_starts


@numba.njit(cache=True, inline="always")
def _top_bits(key, bits):
    """The key's top `bits` bits as an int (0 when bits is 0: a shift by 64 is undefined)."""
    return np.int64(key >> np.uint64(64 - bits)) if bits else 0


@numba.njit(cache=True)
def _group_part(keys, members, slots, table_bits, group_keys, group_sizes, local):
    """Number the distinct keys of one part by first appearance (linear probing): local[k] is member k's
    group, group_sizes its size; returns the number of groups."""
    mask = (1 << table_bits) - 1
    slots[: 1 << table_bits] = -1
    n_groups = 0
    for k in range(len(members)):
        key = keys[members[k]]
        slot = _top_bits(key * _SLOT_MIX, table_bits)
        while True:
            g = slots[slot]
            if g < 0:
                g = n_groups
                slots[slot] = g
                group_keys[g] = key
                group_sizes[g] = 0
                n_groups += 1
                break
            if group_keys[g] == key:
                break
            slot = (slot + 1) & mask
        group_sizes[g] += 1
        local[k] = g
    return n_groups


@numba.njit(cache=True)
def _number_by_first_appearance(groups, n_provisional, offset):
    """Renumber provisional group ids (>= 0) from `offset` in order of first appearance, in place;
    returns the next id."""
    final = np.full(n_provisional, -1, dtype=groups.dtype)
    next_id = offset
    for i in range(len(groups)):
        g = groups[i]
        if g >= 0:
            if final[g] < 0:
                final[g] = next_id
                next_id += 1
            groups[i] = final[g]
    return next_id


@numba.njit(cache=True)
def _extend(positions, hashes, offsets, values, multiplier, n):
    """From (n-1)-grams to n-grams, in place: keep the positions where an n-gram starts within the
    document, adding token n-1's value times its multiplier to their hash; returns how many are kept."""
    kept, doc = 0, 0
    for i in range(len(positions)):
        position = positions[i]
        while offsets[doc + 1] <= position:
            doc += 1
        if position + n <= offsets[doc + 1]:
            positions[kept] = position
            hashes[kept] = hashes[i] + values[position + n - 1] * multiplier
            kept += 1
    return kept


@numba.njit(cache=True)
def _keep_repeated(positions, hashes, groups):
    """Drop the positions of n-grams seen once (group -1), in place; returns how many are kept."""
    kept = 0
    for i in range(len(groups)):
        if groups[i] >= 0:
            positions[kept], hashes[kept], groups[kept] = positions[i], hashes[i], groups[i]
            kept += 1
    return kept


@numba.njit(cache=True)
def _duplicate_positions(positions, groups, n_groups, n):
    """DataTrove's greedy scan over the repeated positions: an n-gram already seen is a duplicate and
    the scan skips its n tokens. Positions whose n-gram occurs once are always new and never seen again,
    so they cannot change which of these count."""
    seen = np.zeros(n_groups, dtype=np.bool_)
    hits = np.empty(len(positions), dtype=np.int64)
    count, next_free = 0, -1
    for i in range(len(positions)):
        position = positions[i]
        if position < next_free:
            continue
        if seen[groups[i]]:
            hits[count] = position
            count += 1
            next_free = position + n
        else:
            seen[groups[i]] = True
    return hits[:count]


@numba.njit(cache=True)
def _top_groups(positions, groups, n_groups, offsets):
    """(count, first position) of each document's most common repeated n-gram, the first seen among
    ties (count 0 where none repeats): groups are numbered by first appearance, so in document order."""
    sizes = np.zeros(n_groups, dtype=np.int64)
    first = np.full(n_groups, -1, dtype=np.int64)
    for i in range(len(groups)):
        sizes[groups[i]] += 1
        if first[groups[i]] < 0:
            first[groups[i]] = positions[i]
    counts = np.zeros(len(offsets) - 1, dtype=np.int64)
    first_positions = np.zeros(len(offsets) - 1, dtype=np.int64)
    doc = 0
    for g in range(n_groups):
        while offsets[doc + 1] <= first[g]:
            doc += 1
        if sizes[g] > counts[doc]:
            counts[doc], first_positions[doc] = sizes[g], first[g]
    return counts, first_positions


class NgramRepetition:
    """Gopher's n-gram repetition measures over a TokenTable, on hashed n-grams.

    An n-gram at position p is a per-document salt + sum_j value[token p+j] * multiplier[j] (mod 2^64):
    equal token sequences in one document collide by construction, others with probability ~2^-64.
    """

    def __init__(self, tokens: TokenTable, n_chars: np.ndarray, seed: int = 20211208) -> None:
        rng = np.random.default_rng(seed)
        top = np.iinfo(np.uint64).max
        self.tokens = tokens
        self.n_chars = np.maximum(n_chars, 1).astype(np.float64)
        self.values = tokens.hashes
        self.multipliers = rng.integers(0, top, size=33, dtype=np.uint64, endpoint=True) | np.uint64(1)
        self.doc_salts = rng.integers(0, top, size=max(tokens.n_docs, 1), dtype=np.uint64, endpoint=True)
        small = int(self.n_chars.sum()) < 2**31
        self.cum_chars = np.zeros(len(tokens.lengths) + 1, dtype=np.int32 if small else np.int64)
        np.cumsum(tokens.lengths, out=self.cum_chars[1:])

    def measure(self, top_ns: Sequence[int], dup_ns: Sequence[int]) -> dict[tuple[str, int], np.ndarray]:
        """{('top', n): top n-gram char fraction, ('dup', n): duplicated n-gram char fraction} per doc.

        Walks n upwards keeping only positions whose n-gram repeats within its document. An n-gram that
        occurs once changes no measure (the most common n-gram of a document without repeats is its
        first, which needs no grouping), so only repeated ones are grouped, numbered in order of first
        appearance as Counter would.
        """
        wanted = sorted(set(top_ns) | set(dup_ns))
        results: dict[tuple[str, int], np.ndarray] = {}
        if not wanted:
            return results
        offsets = self.tokens.offsets
        positions = np.arange(len(self.values), dtype=np.int32 if len(self.values) < 2**31 - 64 else np.int64)
        hashes = np.repeat(self.doc_salts[: self.tokens.n_docs], self.tokens.counts)
        for n in range(1, wanted[-1] + 1):
            kept = _extend(positions, hashes, offsets, self.values, self.multipliers[n - 1], n)
            positions, hashes = positions[:kept], hashes[:kept]
            if n < wanted[0]:
                continue
            groups = _repeated_groups(hashes, np.searchsorted(positions, offsets))
            kept = _keep_repeated(positions, hashes, groups)
            positions, hashes, groups = positions[:kept], hashes[:kept], groups[:kept]
            if n in top_ns:
                results[("top", n)] = self._top_ngram_chars(n, positions, groups) / self.n_chars
            if n in dup_ns:
                results[("dup", n)] = self._duplicated_chars(n, positions, groups) / self.n_chars
        return results

    def _ngram_chars(self, positions: np.ndarray, n: int) -> np.ndarray:
        return self.cum_chars[positions + n] - self.cum_chars[positions]

    def _top_ngram_chars(self, n: int, positions: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """count x len(' '.join(ngram)) of each document's most common n-gram (ties: first seen).

        A document whose n-grams all occur once scores its first n-gram, as Counter.most_common would.
        """
        out = self._first_ngram_chars(n)
        if not len(groups):
            return out
        counts, first_positions = _top_groups(positions, groups, int(groups.max()) + 1, self.tokens.offsets)
        has_repeat = counts > 0
        chars = self._ngram_chars(first_positions[has_repeat], n) + (n - 1)
        out[has_repeat] = chars * counts[has_repeat]
        return out

    def _first_ngram_chars(self, n: int) -> np.ndarray:
        """len(' '.join(first n tokens)) per document, 0 when it has fewer than n tokens."""
        starts = self.tokens.offsets[:-1]
        has_ngram = self.tokens.counts >= n
        out = np.zeros(self.tokens.n_docs, dtype=np.float64)
        out[has_ngram] = self._ngram_chars(starts[has_ngram], n) + (n - 1)
        return out

    def _duplicated_chars(self, n: int, positions: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Characters of the n-grams DataTrove's greedy scan counts as duplicates, per document."""
        if not len(positions):
            return np.zeros(self.tokens.n_docs, dtype=np.float64)
        hits = _duplicate_positions(positions, groups, int(groups.max()) + 1, n)
        return np.bincount(
            self.tokens.doc_of(hits), weights=self._ngram_chars(hits, n), minlength=self.tokens.n_docs
        ).astype(np.float64)

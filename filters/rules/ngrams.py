"""Gopher's n-gram repetition signals over token hashes: the top n-gram's character share for small n and
the share of characters in duplicated n-grams for larger n, found by grouping only repeated n-grams."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from filters.rules.words import _BLOCK, TokenTable

"""Positions per block where a per-position step would otherwise make full-size temporaries."""


def _repeated_groups(keys: np.ndarray) -> np.ndarray:
    """Group id of every key that occurs at least twice, numbered in order of first appearance (as
    Counter numbers them), and -1 for a key that occurs once (such an n-gram changes no measure).

    Keys are split by their top bits into parts of about `_PART_KEYS` (equal keys share a part) and each
    part is sorted on its own, so neither a hash table over every n-gram nor a full-size sort is built.
    """
    groups = np.full(len(keys), -1, dtype=np.int32 if len(keys) < 2**31 else np.int64)
    firsts: list[np.ndarray] = []  # the first position of each group, in group order
    for index in _key_parts(keys):
        part = keys if index is None else keys[index]
        order = np.argsort(part)  # SIMD introsort, ~4x a stable sort: a run's order is arbitrary
        ordered = part[order]
        starts = np.r_[True, ordered[1:] != ordered[:-1]] if len(part) else np.zeros(0, dtype=bool)
        del ordered
        run_starts = np.flatnonzero(starts)
        sizes = np.diff(np.r_[run_starts, len(part)])
        repeated_run = sizes >= 2
        keep = np.repeat(repeated_run, sizes)
        offset = sum(map(len, firsts))
        ids = np.arange(offset, offset + int(repeated_run.sum()), dtype=groups.dtype)
        chosen = order[keep] if index is None else index[order[keep]]
        groups[chosen] = np.repeat(ids, sizes[repeated_run])
        if len(run_starts):  # a run's first position is its smallest
            run_firsts = np.minimum.reduceat(order, run_starts)[repeated_run]
            firsts.append(run_firsts if index is None else index[run_firsts])
    first = np.concatenate(firsts) if firsts else np.zeros(0, dtype=np.int64)
    rank = np.empty(len(first), dtype=groups.dtype)
    rank[np.argsort(first)] = np.arange(len(first), dtype=groups.dtype)
    found = groups >= 0
    groups[found] = rank[groups[found]]
    return groups


_PART_KEYS = 1 << 18


def _compact(keep: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """arrays[keep] for each array, written in place block by block (the kept elements of a block never
    land after it), so a walk over ~11 M positions never holds two copies of its arrays."""
    kept = 0
    for start in range(0, len(keep), _BLOCK):
        chosen = keep[start : start + _BLOCK]
        count = int(np.count_nonzero(chosen))
        for array in arrays:
            array[kept : kept + count] = array[start : start + _BLOCK][chosen]
        kept += count
    return tuple(array[:kept] for array in arrays)


def _key_parts(keys: np.ndarray) -> Iterator[np.ndarray | None]:
    """Index arrays splitting the keys by their top bits into parts of about `_PART_KEYS` keys (None:
    one part, all of them)."""
    bits = max(0, int(np.ceil(np.log2(max(len(keys), 1) / _PART_KEYS))))
    if bits == 0:
        yield None
        return
    part_of = np.empty(len(keys), dtype=np.uint16)
    for start in range(0, len(keys), _BLOCK):
        part_of[start : start + _BLOCK] = keys[start : start + _BLOCK] >> np.uint64(64 - bits)
    for part in range(1 << bits):
        yield np.flatnonzero(part_of == part)


def _is_first_occurrence(groups: np.ndarray) -> np.ndarray:
    """With first-seen numbering, a group starts exactly where the id exceeds every earlier id."""
    first = np.ones(len(groups), dtype=bool)
    if len(groups) > 1:
        first[1:] = groups[1:] > np.maximum.accumulate(groups)[:-1]
    return first


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

    def _has_ngram(self, positions: np.ndarray, n: int) -> np.ndarray:
        """Whether an n-gram starts at each of the (increasing) positions: False only in the last n - 1
        tokens of a document, found per document by binary search (nothing per token is computed)."""
        offsets = self.tokens.offsets
        tail_start = np.maximum(offsets[1:] - (n - 1), offsets[:-1])
        low, high = np.searchsorted(positions, tail_start), np.searchsorted(positions, offsets[1:])
        lengths = high - low
        out = np.ones(len(positions), dtype=bool)
        if lengths.any():
            out[np.repeat(low - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())] = False
        return out

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
        positions = np.arange(len(self.values), dtype=np.int32 if len(self.values) < 2**31 - 64 else np.int64)
        positions = positions[self._has_ngram(positions, wanted[0])]
        hashes = self.doc_salts[self.tokens.doc_of(positions)]
        for offset in range(wanted[0] - 1):
            self._add_token(hashes, positions, offset)
        done = wanted[0] - 1
        for n in range(wanted[0], wanted[-1] + 1):
            positions, hashes = _compact(self._has_ngram(positions, n), positions, hashes)
            self._add_token(hashes, positions, done)
            done = n
            groups = _repeated_groups(hashes)
            positions, hashes, groups = _compact(groups >= 0, positions, hashes, groups)
            counts = np.bincount(groups) if len(groups) else np.zeros(0, dtype=np.int64)
            if n in top_ns:
                results[("top", n)] = self._top_ngram_chars(n, positions, groups, counts) / self.n_chars
            if n in dup_ns:
                results[("dup", n)] = self._duplicated_chars(n, positions, groups) / self.n_chars
        return results

    def _add_token(self, hashes: np.ndarray, positions: np.ndarray, offset: int) -> None:
        """hashes += value[position + offset] * multiplier[offset], in blocks (no full-size temporaries)."""
        for start in range(0, len(positions), _BLOCK):
            stop = start + _BLOCK
            hashes[start:stop] += self.values[positions[start:stop] + offset] * self.multipliers[offset]

    def _ngram_chars(self, positions: np.ndarray, n: int) -> np.ndarray:
        return self.cum_chars[positions + n] - self.cum_chars[positions]

    def _top_ngram_chars(
        self, n: int, positions: np.ndarray, groups: np.ndarray, counts: np.ndarray
    ) -> np.ndarray:
        """count x len(' '.join(ngram)) of each document's most common n-gram (ties: first seen).

        A document whose n-grams all occur once scores its first n-gram, as Counter.most_common would.
        """
        out = self._first_ngram_chars(n)
        first_positions = positions[_is_first_occurrence(groups)]  # one per group, in group order
        repeated = np.flatnonzero(counts >= 2) if len(groups) else np.zeros(0, dtype=np.int64)
        if not len(repeated):
            return out
        first_positions, counts = first_positions[repeated], counts[repeated]
        group_docs = self.tokens.doc_of(first_positions)  # non-decreasing
        starts = np.flatnonzero(np.r_[True, group_docs[1:] != group_docs[:-1]])
        segment = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(group_docs)]))
        best_count = np.maximum.reduceat(counts, starts)
        winners = np.flatnonzero(counts == best_count[segment])
        first_winner = winners[np.r_[True, segment[winners][1:] != segment[winners][:-1]]]
        chars = self._ngram_chars(first_positions[first_winner], n) + (n - 1)
        out[group_docs[first_winner]] = chars * counts[first_winner]
        return out

    def _first_ngram_chars(self, n: int) -> np.ndarray:
        """len(' '.join(first n tokens)) per document, 0 when it has fewer than n tokens."""
        starts = self.tokens.offsets[:-1]
        has_ngram = self.tokens.counts >= n
        out = np.zeros(self.tokens.n_docs, dtype=np.float64)
        out[has_ngram] = self._ngram_chars(starts[has_ngram], n) + (n - 1)
        return out

    def _duplicated_chars(self, n: int, positions: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """DataTrove's greedy scan (skip n tokens after a duplicate), visiting only repeated positions.

        Positions whose n-gram occurs once are always 'new' and never seen again, so they cannot change
        the result; the Python loop therefore runs over the few repeated positions only, and just
        records which of them count as duplicates.
        """
        if not len(positions):
            return np.zeros(self.tokens.n_docs, dtype=np.float64)
        seen = bytearray(int(groups.max()) + 1)
        duplicates: list[int] = []
        next_free = -1
        for start in range(0, len(positions), _BLOCK):  # Python ints for one block at a time
            block = positions[start : start + _BLOCK].tolist(), groups[start : start + _BLOCK].tolist()
            for index, (position, group) in enumerate(zip(*block, strict=True), start):
                if position < next_free:
                    continue
                if seen[group]:
                    duplicates.append(index)
                    next_free = position + n
                else:
                    seen[group] = 1
        hits = positions[np.array(duplicates, dtype=np.int64)]
        return np.bincount(
            self.tokens.doc_of(hits), weights=self._ngram_chars(hits, n), minlength=self.tokens.n_docs
        ).astype(np.float64)

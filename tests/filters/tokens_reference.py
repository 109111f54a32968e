"""The numpy tokenizer that `filters.rules.tokenizer`'s compiled loops replaced (the product code up to
session 8), kept as their oracle: `_window_tokens` and `_window_word_runs` have the signatures and
results of `filters.rules.words`' own, so the tests can compare the two on any text and run the whole
stage with this one swapped in."""

from __future__ import annotations

import numpy as np

from filters.rules.charclasses import (
    _ABBREVIATION_KEYS,
    _CLITIC_KEYS,
    _HASH_BASE,
    _HASH_OFFSET,
    _UNIT_KEYS,
    _bit,
    _char_flags,
    _lowercase,
    _unicode_tables,
)
from filters.rules.words import _code_points, _items_before


def _lookup_flags(code_points: np.ndarray) -> np.ndarray:
    table = _unicode_tables()[0]
    astral = code_points >= 0x10000
    if not astral.any():
        return table[code_points]
    flags = table[np.minimum(code_points, 0xFFFF)]
    flags[astral] = [_char_flags(chr(cp)) for cp in code_points[astral].tolist()]
    return flags


def _shifted_right(values: np.ndarray) -> np.ndarray:
    """values[i - 1] at i (False at 0): 'the previous character is ...'."""
    out = np.zeros_like(values)
    out[1:] = values[:-1]
    return out


class _Sparse:
    """The visible characters that can matter to the tokenizer (not letters/digits, plus the s of 's),
    with their neighbours' class bits (0 across a whitespace or chunk edge)."""

    def __init__(self, flags: np.ndarray, first: np.ndarray, last: np.ndarray) -> None:
        candidate = (flags & _bit("non_symbol")) == 0
        candidate[1:] |= ((flags[1:] & _bit("s")) != 0) & ((flags[:-1] & _bit("apostrophe")) != 0)
        self.pos = np.flatnonzero(candidate)
        self.flags, self.first, self.last = flags, first, last
        self.f = flags[self.pos]
        self._neighbours: dict[int, np.ndarray] = {}
        # consecutive[k]: pos[k] directly follows pos[k - 1] in the same chunk
        self.consecutive = np.zeros(len(self.pos), dtype=bool)
        self.consecutive[1:] = (np.diff(self.pos) == 1) & ~first[self.pos[1:]]

    def has(self, names: str) -> np.ndarray:
        return (self.f & _bit(*names.split())) != 0

    def neighbour(self, offset: int, names: str) -> np.ndarray:
        """Class test on the character `offset` places away (negative: before), within the chunk."""
        return (self._neighbour_flags(offset) & _bit(*names.split())) != 0

    def _neighbour_flags(self, offset: int) -> np.ndarray:
        """Class bits of the character `offset` places away from each element, 0 outside its chunk
        (computed once per offset: the tokenizer asks about the same few offsets many times)."""
        if offset not in self._neighbours:
            valid = np.ones(len(self.pos), dtype=bool)
            edge = self.first if offset < 0 else self.last
            step = -1 if offset < 0 else 1
            for k in range(abs(offset)):
                valid &= ~edge[np.clip(self.pos + step * k, 0, len(edge) - 1)]
            where = np.clip(self.pos + offset, 0, len(self.flags) - 1)
            self._neighbours[offset] = np.where(valid, self.flags[where], 0).astype(self.flags.dtype)
        return self._neighbours[offset]

    def next_in_run(self, mask: np.ndarray) -> np.ndarray:
        """mask of the next sparse element when it is the directly following character, else False."""
        out = np.zeros(len(mask), dtype=bool)
        out[:-1] = mask[1:] & self.consecutive[1:]
        return out

    def prev_in_run(self, mask: np.ndarray) -> np.ndarray:
        out = np.zeros(len(mask), dtype=bool)
        out[1:] = mask[:-1] & self.consecutive[1:]
        return out

    def runs(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(run id per element, first element of each run, last element of each run) of consecutive mask."""
        starts = mask & ~self.prev_in_run(mask)
        ends = mask & ~self.next_in_run(mask)
        return np.cumsum(starts) - 1, np.flatnonzero(starts), np.flatnonzero(ends)


def _token_starts(
    flags: np.ndarray, first: np.ndarray, last: np.ndarray, code_points: np.ndarray
) -> np.ndarray:
    """Mark the visible characters that start a token (see the tokenizer notes above)."""
    s = _Sparse(flags, first, last)
    dot = s.has("dot")
    dot_run = dot & (s.neighbour(-1, "dot") | s.neighbour(1, "dot"))
    in_prefix = _edge_runs(
        s, s.has("affix prefix currency") | dot_run | s.has("plus") & ~s.neighbour(1, "digit"), 0
    )
    prefix_full = np.zeros(len(flags), dtype=bool)
    prefix_full[s.pos[in_prefix]] = True
    s_of_apostrophe_s = s.has("s") & s.neighbour(-1, "apostrophe")
    suffix_ok = s.has("affix suffix") | dot_run | s_of_apostrophe_s
    suffix_ok |= dot & (
        s.neighbour(-1, "lower digit affix quote dot_suffix_after")
        | s.neighbour(-1, "upper") & s.neighbour(-2, "upper")
    )
    suffix_ok |= s.neighbour(-1, "digit") & s.has("plus_percent currency")
    single_dot = dot & suffix_ok & ~dot_run
    suffix_ok[single_dot] &= ~_ends_abbreviation(s.pos[single_dot], flags, first, code_points, prefix_full)
    in_suffix = _edge_runs(s, suffix_ok & ~in_prefix, 1)
    in_core = ~in_prefix & ~in_suffix
    infix = in_core & _infix_chars(s, dot, dot_run)

    dot_continues = dot_run & s.prev_in_run(dot)
    hyphen_continues = s.has("hyphen") & s.prev_in_run(infix & s.has("hyphen"))
    starts = first.copy()
    starts[s.pos[in_prefix & ~dot_continues]] = True
    starts[s.pos[in_suffix & ~dot_continues & ~(s_of_apostrophe_s & s.prev_in_run(in_suffix))]] = True
    starts[s.pos[infix & ~(dot_continues | hyphen_continues)]] = True
    token_end = (in_prefix | infix) & ~s.next_in_run(in_prefix | (infix & (dot_run | s.has("hyphen"))))
    after = s.pos[token_end & ~last[s.pos]] + 1  # the core after a prefix, the rest after an infix
    starts[after] = True
    suffix_full = np.zeros(len(flags), dtype=bool)
    suffix_full[s.pos[in_suffix]] = True
    starts[
        _contraction_starts(
            s.pos[in_core & s.has("apostrophe")], code_points, first, last, prefix_full, suffix_full
        )
    ] = True
    starts[_unit_starts(flags, first, last, code_points, suffix_full)] = True
    starts[_standalone_clitics(s.pos[in_prefix & s.has("apostrophe")], flags, first, last, code_points)] = (
        False
    )
    return starts


def _unspaced_letter_starts(flags: np.ndarray) -> np.ndarray:
    """Token starts of the unspaced-script rule: each letter or punctuation mark of such a script starts
    a token (combining marks stay with their letter), and so does whatever follows one, unless it is a
    combining mark."""
    unspaced = (flags & _bit("unspaced")) != 0
    return (unspaced | _shifted_right(unspaced)) & ((flags & _bit("mark")) == 0)


def _ascii_keys(
    code_points: np.ndarray, flags: np.ndarray, edge: np.ndarray, starts: np.ndarray, step: int, names: str
) -> tuple[np.ndarray, np.ndarray]:
    """(packed key, length) of the run of `names` chars walking from each start by step (+1 or -1).

    Stops at a chunk edge; runs longer than 6 chars or with non-ASCII chars get key 0.
    """
    n, bits = len(code_points), _bit(*names.split())
    keys = np.zeros(len(starts), dtype=np.uint64)
    length = np.zeros(len(starts), dtype=np.int64)
    alive = np.ones(len(starts), dtype=bool)
    invalid = np.zeros(len(starts), dtype=bool)
    for k in range(7):
        at = np.clip(starts + step * k, 0, n - 1)
        if k:
            alive &= ~edge[np.clip(starts + step * (k - 1), 0, n - 1)]
        alive &= ((flags[at] & bits) != 0) & (starts + step * k >= 0) & (starts + step * k < n)
        if k == 6:
            invalid |= alive
            break
        invalid |= alive & (code_points[at] >= 128)
        keys |= np.where(alive, code_points[at].astype(np.uint64) << np.uint64(8 * k), np.uint64(0))
        length += alive
    keys |= length.astype(np.uint64) << np.uint64(56)
    keys[invalid] = 0
    return keys, length


def _ends_abbreviation(dots: np.ndarray, flags, first, code_points, prefix_full) -> np.ndarray:
    """Dots closing a spaCy exception like 'Mr.', 'Jan.', 'a.m.' (the whole core): they stay in the word."""
    keys, length = _ascii_keys(code_points, flags, first, dots - 1, -1, "letter dot")
    keys[first[dots]] = 0  # the word must be in the dot's own chunk
    word_start = dots - length
    whole_core = first[np.clip(word_start, 0, len(flags) - 1)] | prefix_full[np.clip(word_start - 1, 0, None)]
    return np.isin(keys, _ABBREVIATION_KEYS) & whole_core


def _unit_starts(flags, first, last, code_points, suffix_full) -> np.ndarray:
    """Where a unit written against a number at the end of a core begins (20cm, 5pm, 2GB)."""
    letter = (flags & _bit("letter")) != 0
    digit = (flags & _bit("digit")) != 0
    candidates = np.flatnonzero(letter[1:] & digit[:-1] & ~first[1:]) + 1
    if not len(candidates):
        return candidates
    keys, length = _ascii_keys(code_points, flags, last, candidates, 1, "letter")
    end = np.clip(candidates + length - 1, 0, len(flags) - 1)
    at_core_end = last[end] | suffix_full[np.clip(end + 1, 0, len(flags) - 1)]
    return candidates[np.isin(keys, _UNIT_KEYS) & at_core_end & (length > 0)]


def _standalone_clitics(apostrophes: np.ndarray, flags, first, last, code_points) -> np.ndarray:
    """Second characters of chunks that are a whole clitic ('s, 'll, 're, ...): spaCy keeps them one token."""
    keys, length = _ascii_keys(code_points, flags, last, apostrophes + 1, 1, "letter")
    whole = first[apostrophes] & ~last[apostrophes] & (length > 0)
    whole &= last[np.clip(apostrophes + length, 0, len(flags) - 1)]
    return apostrophes[whole & np.isin(keys, _CLITIC_KEYS)] + 1


def _edge_runs(s: _Sparse, ok: np.ndarray, side: int) -> np.ndarray:
    """Elements of runs of `ok` that touch the chunk's start (side 0: prefixes) or end (1: suffixes)."""
    run_id, run_first, run_last = s.runs(ok)
    touches = s.first[s.pos[run_first]] if side == 0 else s.last[s.pos[run_last]]
    return ok & touches[run_id] if len(run_first) else ok


def _infix_chars(s: _Sparse, dot: np.ndarray, dot_run: np.ndarray) -> np.ndarray:
    """Characters that spaCy's English infix patterns split out of a core (not inside URLs)."""
    infix = dot_run | s.has("ellipsis icon")
    infix |= s.has("digit_operator") & s.neighbour(-1, "digit") & s.neighbour(1, "digit minus")
    infix |= dot & s.neighbour(-1, "lower quote") & s.neighbour(1, "upper quote")
    infix |= s.has("comma") & s.neighbour(-1, "letter") & s.neighbour(1, "letter")
    infix |= s.has("infix") & s.neighbour(-1, "letter digit") & s.neighbour(1, "letter")
    hyphen = s.has("hyphen")
    run_id, run_first, run_last = s.runs(hyphen)
    if len(run_first):
        ok = s.neighbour(-1, "letter digit")[run_first] & s.neighbour(1, "letter")[run_last]
        infix |= hyphen & ok[run_id]
    url = s.has("colon") & s.neighbour(1, "slash") & s.neighbour(2, "slash")
    if url.any():  # only the (few) infix characters are looked up in the chunks holding a URL
        chunk_starts = np.flatnonzero(s.first)
        in_url = np.zeros(len(chunk_starts), dtype=bool)
        in_url[np.searchsorted(chunk_starts, s.pos[url], side="right") - 1] = True
        split = np.flatnonzero(infix)
        infix[split] = ~in_url[np.searchsorted(chunk_starts, s.pos[split], side="right") - 1]
    return infix


def _contraction_starts(
    apostrophes: np.ndarray, code_points: np.ndarray, first, last, prefix_full, suffix_full
) -> np.ndarray:
    """Where n't, 'm, 'd, 'll, 're, 've begin at the end of a core (don't -> do n't, I'm -> I 'm)."""
    if not len(apostrophes):
        return apostrophes
    n = len(code_points)

    def char(offset: int) -> np.ndarray:
        return _lowercase(code_points[np.clip(apostrophes + offset, 0, n - 1)])

    def core_ends_at(offset: int) -> np.ndarray:
        at = np.clip(apostrophes + offset, 0, n - 1)
        inside = np.ones(len(apostrophes), dtype=bool)
        for k in range(offset):
            inside &= ~last[np.clip(apostrophes + k, 0, n - 1)]
        return inside & (last[at] | suffix_full[np.clip(at + 1, 0, n - 1)])

    def core_before(count: int) -> np.ndarray:
        ok = np.ones(len(apostrophes), dtype=bool)
        for k in range(count):
            ok &= ~first[np.clip(apostrophes - k, 0, n - 1)]
        return ok & ~prefix_full[np.clip(apostrophes - count, 0, n - 1)]

    c1, c2, before = char(1), char(2), char(-1)
    nt = (before == ord("n")) & (c1 == ord("t")) & core_ends_at(1) & core_before(2)
    single = np.isin(c1, [ord("m"), ord("d")]) & core_ends_at(1) & core_before(1)
    pair = ((c1 == ord("l")) & (c2 == ord("l"))) | (np.isin(c1, [ord("r"), ord("v")]) & (c2 == ord("e")))
    double = pair & core_ends_at(2) & core_before(1)
    return np.r_[apostrophes[nt] - 1, apostrophes[single | double]]


class _Powers:
    """BASE**i and BASE**-i mod 2^64 for i < size, grown on demand and shared by every chunk.

    Both arrays are swapped in as one tuple, so a reader never sees one grown without the other.
    """

    BASE = _HASH_BASE
    INVERSE = np.uint64(pow(int(BASE), -1, 1 << 64))

    def __init__(self) -> None:
        self.tables = (np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))

    KEPT = 1 << 22
    """Tables up to 4 M entries (64 MB) are kept; a longer run of text without whitespace gets its own,
    freed after use, so one odd document never pins gigabytes for the rest of the worker's life."""

    def get(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        tables = self.tables
        if size <= len(tables[0]):
            return tables
        if size > self.KEPT:
            return self._build(size)
        self.tables = tables = self._build(min(max(size, 2 * len(tables[0])), self.KEPT))
        return tables

    def _build(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        up = np.cumprod(np.r_[np.uint64(1), np.full(size - 1, self.BASE, dtype=np.uint64)])
        down = np.cumprod(np.r_[np.uint64(1), np.full(size - 1, self.INVERSE, dtype=np.uint64)])
        return up, down


_POWERS = _Powers()


def _segment_hashes(code_points: np.ndarray, segment_starts: np.ndarray) -> np.ndarray:
    """A 64-bit hash per segment of consecutive code points, equal for equal strings anywhere.

    Polynomial hashing on prefix sums: sum (cp_i + c) * B^i over the segment, divided by B^start
    (multiplied by the inverse power), so one multiply and one cumulative sum cover every segment.
    """
    n = len(code_points)
    up, down = _POWERS.get(n + 1)
    cumulative = np.zeros(n + 1, dtype=np.uint64)
    values = cumulative[1:]  # built in place: one n-sized array besides the code points
    values[:] = code_points
    values += _HASH_OFFSET
    values *= up[:n]
    np.cumsum(values, out=values)
    bounds = np.r_[segment_starts, n]  # a segment ends where the next starts
    at_bounds = cumulative[bounds]
    lengths = np.diff(bounds).astype(np.uint64)
    return (at_bounds[1:] - at_bounds[:-1]) * down[segment_starts] ^ (lengths * _HASH_OFFSET)


def _window_tokens(
    window: str, base: int, doc_char_starts: np.ndarray, split_unspaced: bool = False, word_runs: bool = False
) -> tuple:
    """(tokens before each document start, then per token: hash, length, has_letter, is_word, and with
    `word_runs` the window's word runs) of one window starting at character `base` of the chunk."""
    code_points = _code_points(window)
    flags = _lookup_flags(code_points)
    runs = (_word_runs_of(code_points, flags, base, doc_char_starts),) if word_runs else ()
    visible = np.flatnonzero((flags & _bit("space")) == 0)
    visible_flags, visible_points = flags[visible], code_points[visible]
    del code_points, flags
    first = np.ones(len(visible), dtype=bool)  # first character of a whitespace-separated chunk
    first[1:] = np.diff(visible) != 1
    last = np.zeros(len(visible), dtype=bool)
    last[:-1] = first[1:]
    last[-1:] = True
    starts = _token_starts(visible_flags, first, last, visible_points)
    if split_unspaced:
        starts |= _unspaced_letter_starts(visible_flags)
    first_char = np.flatnonzero(starts)
    classes = _bits_per_segment(visible_flags & _bit("letter", "non_symbol"), first_char)
    return (
        _items_before(visible[first_char] + base, doc_char_starts),
        _segment_hashes(visible_points, first_char),
        np.diff(np.r_[first_char, len(visible)]).astype(np.int32),
        (classes & _bit("letter")) != 0,
        (classes & _bit("non_symbol")) != 0,
        *runs,
    )


def _window_word_runs(window: str, base: int, doc_char_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(runs before each document start, hash of each lowercased run) of the maximal runs of word chars
    of one window."""
    code_points = _code_points(window)
    return _word_runs_of(code_points, _lookup_flags(code_points), base, doc_char_starts)


def _word_runs_of(
    code_points: np.ndarray, flags: np.ndarray, base: int, doc_char_starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    word = (flags & _bit("word")) != 0
    in_run = np.flatnonzero(word)
    first_char = np.flatnonzero((word & ~_shifted_right(word))[in_run])
    before = _items_before(in_run[first_char] + base, doc_char_starts)
    return before, _segment_hashes(_lowercase(code_points[in_run]), first_char)


def _bits_per_segment(flags: np.ndarray, segment_starts: np.ndarray) -> np.ndarray:
    """The class bits any character of each segment has (from its start to the next, none empty)."""
    if not len(segment_starts):
        return np.zeros(0, dtype=flags.dtype)
    return np.bitwise_or.reduceat(flags, segment_starts)

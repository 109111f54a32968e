"""The tokenizer's compiled loops (numba): one window of text in, every token (start, hash, length, class
bits) and C4's word runs out, in one pass per chunk of visible characters.

Tokens approximate spaCy's English tokenizer (what DataTrove counts as words):
  - whitespace separates chunks; each chunk loses leading prefix characters (punctuation, quotes,
    currency, ...) and trailing suffix characters (the same, plus '.' after a lowercase letter or digit,
    and 's), one token each, a run of dots being one token; n't, 'll, 'm, ... split off the core;
  - the core left in between is split only at spaCy's infixes: '...', icons, '-' between a letter or
    digit and a letter, ':<>=/' likewise, ',' between letters, '.' between lowercase and uppercase,
    '+-*^' between digits. URLs (with '://') are not split inside.
So `type="image`, `|Microsoft`, `---` and `127.0.0.1:80` stay one token each, as in spaCy. Letters and
digits never decide anything alone: a chunk of letters and digits only (most of them) is one token
unless a unit follows a number in it (20cm), and the rules below run only on the other chunks.
"""

from __future__ import annotations

import numba
import numpy as np

from filters.rules.affix_rules import _START, apply_rules
from filters.rules.charclasses import (
    _DIGIT,
    _HASH_BASE,
    _HASH_OFFSET,
    _LETTER,
    _MARK,
    _NON_SYMBOL,
    _SPACE,
    _UNSPACED,
    _WORD,
    _lower,
)


@numba.njit(cache=True)
def window_tokens(code_points, flag_table, lower_table, astral_points, astral_flags, split_unspaced, runs):
    """(start, hash, length, class bits) of every token of a window, starts as indices into it, and
    with `runs` (start, hash) of every maximal run of word characters, lowercased (C4's \\w+ runs).

    Class bits: 1 the token has a letter, 2 it has a character that is not punctuation or a symbol.
    """
    flags = _flags_of(code_points, flag_table, astral_points, astral_flags)
    n = len(code_points)
    starts = np.empty(n, dtype=np.int64)
    hashes = np.empty(n, dtype=np.uint64)
    lengths = np.empty(n, dtype=np.int32)
    classes = np.empty(n, dtype=np.uint8)
    state = np.zeros(n, dtype=np.uint8)
    run_starts = np.empty(n // 2 + 1 if runs else 0, dtype=np.int64)
    run_hashes = np.empty(len(run_starts), dtype=np.uint64)
    count, n_runs, a = 0, 0, 0
    while a < n:
        if flags[a] & _SPACE:
            a += 1
            continue
        b, bits, every, before, unit = a, 0, _NON_SYMBOL, 0, 0
        total, lowered, power = np.uint64(0), np.uint64(0), np.uint64(1)
        while b < n and not flags[b] & _SPACE:  # the chunk, hashed as if it were one token and one run
            here = flags[b]
            bits |= here
            every &= here
            unit |= (before & _DIGIT) * (here & _LETTER)  # a letter after a digit may start a unit
            before = here
            total += (np.uint64(code_points[b]) + _HASH_OFFSET) * power
            if runs:
                lowered += (np.uint64(_lower(code_points[b], lower_table)) + _HASH_OFFSET) * power
            power *= _HASH_BASE
            b += 1
        if runs and every:  # letters, digits and marks only: the chunk is one word run
            run_starts[n_runs] = a
            run_hashes[n_runs] = lowered ^ (np.uint64(b - a) * _HASH_OFFSET)
            n_runs += 1
        elif runs:
            n_runs = _add_word_runs(code_points, flags, lower_table, a, b, run_starts, run_hashes, n_runs)
        plain = every and not unit  # letters, digits and marks only, no unit: one token whatever the rules
        if plain and not (split_unspaced and bits & _UNSPACED):
            starts[count], lengths[count], classes[count] = a, b - a, _token_classes(bits)
            hashes[count] = total ^ (np.uint64(b - a) * _HASH_OFFSET)
            count += 1
        else:
            _chunk_starts(code_points, flags, lower_table, a, b, state, split_unspaced, plain, bits)
            count = _emit_tokens(code_points, flags, a, b, state, starts, hashes, lengths, classes, count)
        a = b
    tokens = starts[:count], hashes[:count], lengths[:count], classes[:count]
    return (*tokens, run_starts[:n_runs], run_hashes[:n_runs])


@numba.njit(cache=True)
def window_word_runs(code_points, flag_table, lower_table, astral_points, astral_flags):
    """(start, hash) of every lowercased maximal run of word characters of a window."""
    flags = _flags_of(code_points, flag_table, astral_points, astral_flags)
    n = len(code_points)
    starts, hashes = np.empty(n // 2 + 1, dtype=np.int64), np.empty(n // 2 + 1, dtype=np.uint64)
    count = _add_word_runs(code_points, flags, lower_table, 0, n, starts, hashes, 0)
    return starts[:count], hashes[:count]


@numba.njit(cache=True, inline="always")
def _token_classes(bits):
    return (1 if bits & _LETTER else 0) | (2 if bits & _NON_SYMBOL else 0)


@numba.njit(cache=True)
def _flags_of(code_points, flag_table, astral_points, astral_flags):
    flags = np.empty(len(code_points), dtype=np.uint32)
    for i in range(len(code_points)):
        cp = code_points[i]
        if cp < 0x10000:
            flags[i] = flag_table[cp]
        else:
            flags[i] = astral_flags[np.searchsorted(astral_points, cp)]
    return flags


@numba.njit(cache=True, inline="always")
def segment_hash(points, start, stop):
    """The token hash of points[start:stop] (see charclasses._HASH_BASE)."""
    total, power = np.uint64(0), np.uint64(1)
    for i in range(start, stop):
        total += (np.uint64(points[i]) + _HASH_OFFSET) * power
        power *= _HASH_BASE
    return total ^ (np.uint64(stop - start) * _HASH_OFFSET)


@numba.njit(cache=True)
def segment_hashes(points, starts):
    """The hash of each segment of points, from its start to the next (the last to the end)."""
    out = np.empty(len(starts), dtype=np.uint64)
    for k in range(len(starts)):
        stop = starts[k + 1] if k + 1 < len(starts) else len(points)
        out[k] = segment_hash(points, starts[k], stop)
    return out


@numba.njit(cache=True)
def substring_hashes(points, length, count):
    """The hash of points[k : k + length] for each k < count."""
    out = np.empty(count, dtype=np.uint64)
    for k in range(count):
        out[k] = segment_hash(points, k, k + length)
    return out


@numba.njit(cache=True)
def _add_word_runs(code_points, flags, lower_table, a, b, starts, hashes, count):
    """Append (start, hash of the lowercased run) of every maximal run of word characters in [a, b),
    which is bounded by non-word characters or the window's ends; returns the new count."""
    i = a
    while i < b:
        if not flags[i] & _WORD:
            i += 1
            continue
        total, power, start = np.uint64(0), np.uint64(1), i
        while i < b and flags[i] & _WORD:
            total += (np.uint64(_lower(code_points[i], lower_table)) + _HASH_OFFSET) * power
            power *= _HASH_BASE
            i += 1
        starts[count] = start
        hashes[count] = total ^ (np.uint64(i - start) * _HASH_OFFSET)
        count += 1
    return count


@numba.njit(cache=True, inline="always")
def _emit_tokens(code_points, flags, a, b, state, starts, hashes, lengths, classes, count):
    """Append the tokens of chunk [a, b) (they start where `state` has _START) to the output arrays."""
    start = a
    for i in range(a + 1, b + 1):
        if i < b and not state[i] & _START:
            continue
        bits = 0
        for j in range(start, i):
            bits |= flags[j]
        starts[count] = start
        hashes[count] = segment_hash(code_points, start, i)
        lengths[count] = i - start
        classes[count] = _token_classes(bits)
        count += 1
        start = i
    return count


@numba.njit(cache=True, inline="always")
def _chunk_starts(code_points, flags, lower_table, a, b, state, split_unspaced, plain, bits):
    """Mark (_START in `state`) the characters of chunk [a, b) that start a token; `plain`: it holds
    letters, digits and marks only, and no letter after a digit; `bits`: its characters' class bits."""
    state[a:b] = 0
    state[a] = _START
    if not plain:
        apply_rules(code_points, flags, lower_table, a, b, state, bits)
    if split_unspaced:  # each letter or mark of an unspaced script, and what follows one, but no mark
        for i in range(a + 1, b):
            if (flags[i] & _UNSPACED or flags[i - 1] & _UNSPACED) and not flags[i] & _MARK:
                state[i] |= _START

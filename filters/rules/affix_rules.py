"""spaCy's English prefix, suffix, infix and exception rules as compiled loops (numba) over one chunk of
visible characters: they mark, in a per-character `state`, where the chunk's tokens start.

Why apart from `tokenizer`: the tokenizer's pass (windows, chunks, token hashes) is the same for every
language; these rules are the English tokenizer's and only run on chunks holding punctuation or symbols
(see `tokenizer`'s docstring for what they split and what they keep whole).
"""

from __future__ import annotations

import numba
import numpy as np

from filters.rules.charclasses import (
    _ABBREVIATION_KEYS,
    _AFTER_SUFFIX_DOT,
    _ALWAYS_INFIX,
    _APOSTROPHE,
    _CLITIC_KEYS,
    _COLON,
    _COMMA,
    _DIGIT,
    _DIGIT_OPERATOR,
    _DIGIT_OR_MINUS,
    _DOT,
    _HYPHEN,
    _INFIX,
    _LETTER,
    _LETTER_OR_DIGIT,
    _LOWER_OR_QUOTE,
    _NON_SYMBOL,
    _NUMBER_SUFFIX,
    _PLUS,
    _PREFIX,
    _S,
    _SLASH,
    _SUFFIX,
    _UNIT_KEYS,
    _UPPER,
    _UPPER_OR_QUOTE,
    _lower,
)

# per-character state of a chunk in `_chunk_starts`
_IN_PREFIX, _IN_SUFFIX, _IS_INFIX, _DOT_RUN, _START = 1, 2, 4, 8, 16


@numba.njit(cache=True, inline="always")
def _at(flags, i, a, b):
    """Class bits of character i, 0 outside the chunk [a, b)."""
    return flags[i] if a <= i < b else 0


@numba.njit(cache=True, inline="always")
def apply_rules(code_points, flags, lower_table, a, b, state, bits):
    """spaCy's prefix, suffix, infix and exception rules on a chunk holding punctuation or symbols (each
    only where the chunk has a character it needs: `bits`, the class bits of its characters)."""
    for i in range(a, b if bits & _DOT else a):
        if flags[i] & _DOT and (_at(flags, i - 1, a, b) & _DOT or _at(flags, i + 1, a, b) & _DOT):
            state[i] |= _DOT_RUN
    core_start = a
    while core_start < b and _is_prefix(flags, state, core_start, a, b):
        state[core_start] |= _IN_PREFIX
        core_start += 1
    core_stop = b
    while core_stop > core_start and _is_suffix(code_points, flags, state, core_stop - 1, a, b):
        core_stop -= 1
        state[core_stop] |= _IN_SUFFIX
    if not (bits & _COLON and _has_url(flags, a, b)):
        _mark_infixes(flags, state, core_start, core_stop, a, b, bits)
    _mark_split_starts(flags, state, a, b)
    if bits & _APOSTROPHE:
        for i in range(core_start, core_stop):
            if flags[i] & _APOSTROPHE:
                _mark_contraction(code_points, lower_table, state, i, a, b)
        _unmark_standalone_clitic(code_points, flags, state, a, b)
    if bits & _DIGIT and bits & _LETTER:
        for i in range(a + 1, b):
            if flags[i] & _LETTER and flags[i - 1] & _DIGIT:
                _mark_unit(code_points, flags, state, i, a, b)


@numba.njit(cache=True, inline="always")
def _is_prefix(flags, state, i, a, b):
    f = flags[i]
    return bool(f & _PREFIX or state[i] & _DOT_RUN or (f & _PLUS and not _at(flags, i + 1, a, b) & _DIGIT))


@numba.njit(cache=True, inline="always")
def _is_suffix(code_points, flags, state, i, a, b):
    f, before, two_before = flags[i], _at(flags, i - 1, a, b), _at(flags, i - 2, a, b)
    if f & _SUFFIX or state[i] & _DOT_RUN or (f & _S and before & _APOSTROPHE):
        return True
    if f & _DOT and (before & _AFTER_SUFFIX_DOT or (before & _UPPER and two_before & _UPPER)):
        return not _ends_abbreviation(code_points, flags, state, i, a, b)
    return bool(before & _DIGIT and f & _NUMBER_SUFFIX)


@numba.njit(cache=True, inline="always")
def _ends_abbreviation(code_points, flags, state, dot, a, b):
    """The dot closes a spaCy exception like 'Mr.', 'Jan.', 'a.m.' (the whole core): it stays in the word."""
    if dot == a:
        return False
    key, length = _ascii_key(code_points, flags, dot - 1, -1, a, b, _LETTER | _DOT)
    word_start = dot - length
    whole_core = word_start == a or state[word_start - 1] & _IN_PREFIX
    return bool(whole_core) and _contains(_ABBREVIATION_KEYS, key)


@numba.njit(cache=True, inline="always")
def _ascii_key(code_points, flags, start, step, a, b, bits):
    """(packed key, length) of the run of `bits` characters walking from start by step (+1 or -1) in the
    chunk [a, b): the characters' bytes and the length in the top byte (see charclasses._pack_ascii);
    key 0 for a run longer than 6 characters or with a non-ASCII one."""
    key, length, valid = np.uint64(0), 0, True
    for k in range(7):
        j = start + step * k
        if j < a or j >= b or not flags[j] & bits:
            break
        if k == 6:
            return np.uint64(0), length
        valid = valid and code_points[j] < 128
        key |= np.uint64(code_points[j]) << np.uint64(8 * k)
        length += 1
    if not valid:
        return np.uint64(0), length
    return key | (np.uint64(length) << np.uint64(56)), length


@numba.njit(cache=True, inline="always")
def _contains(sorted_keys, key):
    at = np.searchsorted(sorted_keys, key)
    return at < len(sorted_keys) and sorted_keys[at] == key


@numba.njit(cache=True, inline="always")
def _has_url(flags, a, b):
    for i in range(a, b):
        if flags[i] & _COLON and _at(flags, i + 1, a, b) & _SLASH and _at(flags, i + 2, a, b) & _SLASH:
            return True
    return False


@numba.njit(cache=True, inline="always")
def _mark_infixes(flags, state, core_start, core_stop, a, b, bits):
    """The characters of the core [core_start, core_stop) that spaCy's English infix patterns split out
    (never a letter, digit or mark)."""
    for i in range(core_start, core_stop):
        if flags[i] & _NON_SYMBOL:
            continue
        f, before, after = flags[i], _at(flags, i - 1, a, b), _at(flags, i + 1, a, b)
        if (
            state[i] & _DOT_RUN
            or f & _ALWAYS_INFIX
            or (f & _DIGIT_OPERATOR and before & _DIGIT and after & _DIGIT_OR_MINUS)
            or (f & _DOT and before & _LOWER_OR_QUOTE and after & _UPPER_OR_QUOTE)
            or (f & _COMMA and before & _LETTER and after & _LETTER)
            or (f & _INFIX and before & _LETTER_OR_DIGIT and after & _LETTER)
        ):
            state[i] |= _IS_INFIX
    i = a if bits & _HYPHEN else b
    while i < b:  # a run of hyphens between a letter or digit and a letter (the run is judged whole)
        if not flags[i] & _HYPHEN:
            i += 1
            continue
        stop = i
        while stop < b and flags[stop] & _HYPHEN:
            stop += 1
        if _at(flags, i - 1, a, b) & _LETTER_OR_DIGIT and _at(flags, stop, a, b) & _LETTER:
            for j in range(max(i, core_start), min(stop, core_stop)):
                state[j] |= _IS_INFIX
        i = stop


@numba.njit(cache=True, inline="always")
def _mark_split_starts(flags, state, a, b):
    """Starts at prefix, suffix and infix characters (a run of dots, or of infix hyphens, is one token),
    and at what follows the last prefix character or an infix."""
    for i in range(a, b):
        here = state[i]
        if not here & (_IN_PREFIX | _IN_SUFFIX | _IS_INFIX):
            continue
        before, state_before = _at(flags, i - 1, a, b), state[i - 1] if i > a else 0
        dot_continues = bool(here & _DOT_RUN and before & _DOT)
        hyphen_continues = bool(flags[i] & _HYPHEN and state_before & _IS_INFIX and before & _HYPHEN)
        apostrophe_s_continues = bool(flags[i] & _S and before & _APOSTROPHE and state_before & _IN_SUFFIX)
        if here & _IN_PREFIX and not dot_continues:
            state[i] |= _START
        if here & _IN_SUFFIX and not dot_continues and not apostrophe_s_continues:
            state[i] |= _START
        if here & _IS_INFIX and not (dot_continues or hyphen_continues):
            state[i] |= _START
        if here & (_IN_PREFIX | _IS_INFIX) and i + 1 < b:
            after = state[i + 1]
            joined = after & _IS_INFIX and (after & _DOT_RUN or flags[i + 1] & _HYPHEN)
            if not (after & _IN_PREFIX or joined):
                state[i + 1] |= _START


@numba.njit(cache=True, inline="always")
def _core_ends_at(state, i, b):
    return i < b and (i == b - 1 or state[i + 1] & _IN_SUFFIX)


@numba.njit(cache=True, inline="always")
def _mark_contraction(code_points, lower_table, state, i, a, b):
    """n't, 'm, 'd, 'll, 're, 've at the end of a core, apostrophe at i (don't -> do n't, I'm -> I 'm)."""
    c1 = _lower(code_points[i + 1], lower_table) if i + 1 < b else 0
    c2 = _lower(code_points[i + 2], lower_table) if i + 2 < b else 0
    one_before = i > a and not state[i - 1] & _IN_PREFIX
    two_before = i >= a + 2 and not state[i - 2] & _IN_PREFIX
    n_t = two_before and c1 == ord("t") and _lower(code_points[i - 1], lower_table) == ord("n")
    if n_t and _core_ends_at(state, i + 1, b):
        state[i - 1] |= _START
    if one_before and (c1 == ord("m") or c1 == ord("d")) and _core_ends_at(state, i + 1, b):
        state[i] |= _START
    pair = (c1 == ord("l") and c2 == ord("l")) or ((c1 == ord("r") or c1 == ord("v")) and c2 == ord("e"))
    if one_before and pair and _core_ends_at(state, i + 2, b):
        state[i] |= _START


@numba.njit(cache=True, inline="always")
def _mark_unit(code_points, flags, state, i, a, b):
    """A unit written against a number at the end of a core (20cm, 5pm, 2GB) starts a token at i."""
    key, length = _ascii_key(code_points, flags, i, 1, a, b, _LETTER)
    if _core_ends_at(state, i + length - 1, b) and _contains(_UNIT_KEYS, key):
        state[i] |= _START


@numba.njit(cache=True, inline="always")
def _unmark_standalone_clitic(code_points, flags, state, a, b):
    """A chunk that is a whole clitic ('s, 'll, 're, ...) stays one token, as in spaCy."""
    if not (state[a] & _IN_PREFIX and flags[a] & _APOSTROPHE and b - a > 1):
        return
    key, length = _ascii_key(code_points, flags, a + 1, 1, a, b, _LETTER)
    if length > 0 and a + length == b - 1 and _contains(_CLITIC_KEYS, key):
        state[a + 1] &= ~_START

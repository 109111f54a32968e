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

from filters.rules.charclasses import (
    _ABBREVIATION_KEYS,
    _CLITIC_KEYS,
    _HASH_BASE,
    _HASH_OFFSET,
    _UNIT_KEYS,
    _bit,
)

_SPACE, _LETTER, _UPPER, _LOWER, _DIGIT = (_bit(n) for n in ("space", "letter", "upper", "lower", "digit"))
_NON_SYMBOL, _WORD, _UNSPACED, _MARK = (_bit(n) for n in ("non_symbol", "word", "unspaced", "mark"))
_DOT, _APOSTROPHE, _S, _HYPHEN, _PLUS = (_bit(n) for n in ("dot", "apostrophe", "s", "hyphen", "plus"))
_PREFIX = _bit("affix", "prefix", "currency")
_SUFFIX = _bit("affix", "suffix")
_AFTER_SUFFIX_DOT = _bit("lower", "digit", "affix", "quote", "dot_suffix_after")
_NUMBER_SUFFIX = _bit("plus_percent", "currency")
_ALWAYS_INFIX = _bit("ellipsis", "icon")
_LETTER_OR_DIGIT = _bit("letter", "digit")
_DIGIT_OR_MINUS = _bit("digit", "minus")
_LOWER_OR_QUOTE, _UPPER_OR_QUOTE = _bit("lower", "quote"), _bit("upper", "quote")
_DIGIT_OPERATOR, _COMMA, _INFIX = _bit("digit_operator"), _bit("comma"), _bit("infix")
_COLON, _SLASH = _bit("colon"), _bit("slash")

# per-character state of a chunk in `_chunk_starts`
_IN_PREFIX, _IN_SUFFIX, _IS_INFIX, _DOT_RUN, _START = 1, 2, 4, 8, 16


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
def _lower(code_point, lower_table):
    return lower_table[code_point] if code_point < 0x10000 else code_point


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
        _apply_rules(code_points, flags, lower_table, a, b, state, bits)
    if split_unspaced:  # each letter or mark of an unspaced script, and what follows one, but no mark
        for i in range(a + 1, b):
            if (flags[i] & _UNSPACED or flags[i - 1] & _UNSPACED) and not flags[i] & _MARK:
                state[i] |= _START


@numba.njit(cache=True, inline="always")
def _at(flags, i, a, b):
    """Class bits of character i, 0 outside the chunk [a, b)."""
    return flags[i] if a <= i < b else 0


@numba.njit(cache=True, inline="always")
def _apply_rules(code_points, flags, lower_table, a, b, state, bits):
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

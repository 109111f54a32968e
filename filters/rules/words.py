"""Words as spaCy's English tokenizer would split them, found with numpy over the code points of a batch
(no Python object per token), each token a 64-bit hash with its length and class bits.

Long documents are tokenized in ~1M-character windows cut at whitespace, so memory follows a small
constant per character."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from curate.textwindows import whitespace_windows
from filters.rules.settings import _ABBREVIATIONS, _UNITS

_BLOCK = 1 << 16  # positions handled per numpy step in block loops (bounds the temporaries)


#
# Tokens approximate spaCy's English tokenizer (what DataTrove counts as words), computed for a whole
# chunk of documents with numpy over UTF-32 code points instead of one Python object per token:
#   - whitespace separates chunks; each chunk loses leading prefix characters (punctuation, quotes,
#     currency, ...) and trailing suffix characters (the same, plus '.' after a lowercase letter or digit,
#     and 's), one token each, a run of dots being one token; n't, 'll, 'm, ... split off the core;
#   - the core left in between is split only at spaCy's infixes: '...', icons, '-' between a letter or
#     digit and a letter, ':<>=/' likewise, ',' between letters, '.' between lowercase and uppercase,
#     '+-*^' between digits. URLs (with '://') are not split inside.
# So `type="image`, `|Microsoft`, `---` and `127.0.0.1:80` stay one token each, as in spaCy. Letters and
# digits never decide anything alone, so every rule is evaluated only at the (few) other characters.

_QUOTES = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉⟦⟧"
_CHAR_CLASSES: dict[str, str] = {  # class name -> characters, besides the Unicode-category classes
    "affix": "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪" + _QUOTES,
    "prefix": "§%=—–",
    "suffix": "—–",
    "quote": _QUOTES,
    "hyphen": "-–—~",
    "infix": ":<>=/",
    "dot": ".",
    "apostrophe": "'’",
    "s": "sS",
    "digit_operator": "+-*^",
    "comma": ",",
    "plus": "+",
    "plus_percent": "+%",
    "dot_suffix_after": "%²-+",
    "ellipsis": "…",
    "colon": ":",
    "slash": "/",
    "minus": "-",
}
_CLASS_BITS = {
    name: 1 << i
    for i, name in enumerate(
        [
            "space",
            "letter",
            "upper",
            "lower",
            "digit",
            "non_symbol",
            "word",
            "icon",
            "currency",
            "unspaced",
            "mark",
            *_CHAR_CLASSES,
        ]
    )
}
_HASH_OFFSET = np.uint64(0x9E3779B97F4A7C15)
_UNSPACED_BLOCKS = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x19E0, 0x19FF),  # Khmer symbols
    (0x3000, 0x303F),  # CJK symbols and punctuation (、。「」々)
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA9E0, 0xA9FF),  # Myanmar extended-B
    (0xAA60, 0xAA7F),  # Myanmar extended-A
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF00, 0xFF9F),  # fullwidth punctuation and forms (，！？：Ａ), halfwidth Katakana
    (0x20000, 0x3134F),  # CJK extensions B-G
)
"""Unicode blocks of the scripts written without spaces between words (see `languages.UNSPACED`): their
letters, and the CJK and fullwidth punctuation that sits between them, are one-character tokens."""
_DOT_SPLITS_AFTER = frozenset(_CHAR_CLASSES["affix"] + _CHAR_CLASSES["dot_suffix_after"])


def _bit(*names: str) -> int:
    total = 0
    for name in names:
        total |= _CLASS_BITS[name]
    return total


def _char_flags(char: str) -> int:
    """Class bits of one character: what the tokenizer and the word rules need to know about it."""
    category = unicodedata.category(char)
    major = category[0]
    names = [name for name, chars in _CHAR_CLASSES.items() if char in chars]
    names += ["space"] if char.isspace() else []
    names += ["letter"] if major == "L" else []
    names += ["upper"] if category in ("Lu", "Lt") else []
    names += ["lower"] if category == "Ll" else []
    names += ["digit"] if category == "Nd" else []
    names += ["non_symbol"] if major in "LNM" else []
    names += ["word"] if major in "LNM" or char == "_" else []
    names += ["icon", "affix"] if category == "So" else []
    names += ["currency"] if category == "Sc" else []
    names += ["mark"] if major == "M" else []
    names += ["unspaced"] if major in "LMPS" and _in_unspaced_block(ord(char)) else []
    return _bit(*names)


def _in_unspaced_block(code_point: int) -> bool:
    return any(low <= code_point <= high for low, high in _UNSPACED_BLOCKS)


@lru_cache(maxsize=1)
def _unicode_tables() -> tuple[np.ndarray, np.ndarray]:
    """(class bits, lowercase) for every Basic Multilingual Plane code point, built once (~0.2 s)."""
    chars = [chr(cp) for cp in range(0x10000)]
    flags = np.fromiter(map(_char_flags, chars), dtype=np.uint32, count=0x10000)
    lowered = [c.lower() for c in chars]
    lower = np.fromiter(
        (ord(low) if len(low) == 1 else cp for cp, low in enumerate(lowered)), np.uint32, 0x10000
    )
    return flags, lower


def _lookup_flags(code_points: np.ndarray) -> np.ndarray:
    table = _unicode_tables()[0]
    astral = code_points >= 0x10000
    if not astral.any():
        return table[code_points]
    flags = table[np.minimum(code_points, 0xFFFF)]
    flags[astral] = [_char_flags(chr(cp)) for cp in code_points[astral].tolist()]
    return flags


def _lowercase(code_points: np.ndarray) -> np.ndarray:
    table = _unicode_tables()[1]
    if not len(code_points) or code_points.max() < 0x10000:
        return table[code_points]
    return np.where(code_points < 0x10000, table[np.minimum(code_points, 0xFFFF)], code_points)


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


def _pack_ascii(word: str) -> int:
    """A word of at most 6 ASCII chars as one integer (what _ascii_keys computes from the text)."""
    return len(word) << 56 | sum(ord(ch) << (8 * k) for k, ch in enumerate(word))


_ABBREVIATION_KEYS = np.array(sorted(_pack_ascii(w[::-1]) for w in _ABBREVIATIONS), dtype=np.uint64)
_UNIT_KEYS = np.array(sorted(_pack_ascii(w) for w in _UNITS), dtype=np.uint64)


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


_CLITIC_KEYS = np.array(
    sorted(_pack_ascii(w) for c in ("s", "m", "d", "ll", "re", "ve") for w in (c, c.upper())), dtype=np.uint64
)


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

    BASE = np.uint64(0x2545F4914F6CDD1D)  # odd, so invertible mod 2^64
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


def hash_strings(strings: Sequence[str], lower: bool = False) -> np.ndarray:
    """The token hash each whole string would get (lowercased first if `lower`)."""
    strings = list(strings)
    if not strings:
        return np.zeros(0, dtype=np.uint64)
    code_points = np.frombuffer("".join(strings).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if lower:
        code_points = _lowercase(code_points)
    starts = np.r_[0, np.cumsum([len(s) for s in strings])[:-1]].astype(np.int64)
    return _segment_hashes(code_points, starts)


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@dataclass
class TokenTable:
    """Every token of a chunk of documents as flat numpy arrays, with per-document offsets.

    The per-character work (code points, class bits, masks: ~40 bytes per character) runs on windows of
    about a million characters cut at whitespace, which no token spans, so a 50 MB document costs the
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


def _bits_per_segment(flags: np.ndarray, segment_starts: np.ndarray) -> np.ndarray:
    """The class bits any character of each segment has (from its start to the next, none empty)."""
    if not len(segment_starts):
        return np.zeros(0, dtype=flags.dtype)
    return np.bitwise_or.reduceat(flags, segment_starts)


class HashSet:
    """Membership of token hashes in a small fixed set (stop words, bad words).

    A 64K-bucket bitmap on the top 16 bits rejects almost every token with one gather; only the few
    survivors are binary-searched. np.isin would sort all tokens instead.
    """

    def __init__(self, hashes: np.ndarray) -> None:
        self.sorted = np.unique(hashes)
        self.buckets = np.zeros(1 << 16, dtype=bool)
        self.buckets[(self.sorted >> np.uint64(48)).astype(np.intp)] = True

    def __len__(self) -> int:
        return len(self.sorted)

    def hits(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions of the values in the set, their index in `self.sorted`), in blocks of values so
        no per-value temporary of a long document is ever made."""
        positions, which = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        for start in range(0, len(values), _BLOCK):
            block = values[start : start + _BLOCK]
            maybe = np.flatnonzero(self.buckets[(block >> np.uint64(48)).astype(np.intp)])
            if len(maybe):
                index = np.minimum(np.searchsorted(self.sorted, block[maybe]), len(self.sorted) - 1)
                found = self.sorted[index] == block[maybe]
                positions.append(maybe[found] + start)
                which.append(index[found])
        return np.concatenate(positions), np.concatenate(which)


def distinct_stop_words(
    tokens: TokenTable, stop_words: HashSet, start: int = 0, stop: int | None = None
) -> np.ndarray:
    """How many distinct stop words (exact, case-sensitive tokens) each document of start:stop contains
    (all documents by default; one language's run of documents when the batch is grouped by language)."""
    stop = tokens.n_docs if stop is None else stop
    offsets = tokens.offsets[start : stop + 1]
    hits, which = stop_words.hits(tokens.hashes[offsets[0] : offsets[-1]])
    docs = np.searchsorted(offsets - offsets[0], hits, side="right") - 1
    keys = np.unique(docs * len(stop_words) + which)
    return np.bincount(keys // max(len(stop_words), 1), minlength=stop - start)

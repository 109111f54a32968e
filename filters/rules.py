"""Heuristic quality rules of the Gopher, C4 and FineWeb recipes, evaluated a batch of documents at a time.

Why this module exists: DataTrove's reference filters run about 0.2 MB/s per core because they tokenize
every document with spaCy and build a Python string for every n-gram. Here the same published rules run
on a chunk of documents at once, with numpy over the UTF-32 code points of the joined texts:

- Tokens: a character-class table and a few boolean masks find where spaCy's English tokenizer would
  split (see the tokenizer notes below); each token is then a 64-bit polynomial hash, its length and two
  class bits, all from cumulative sums. No Python object is made per token.
- N-grams: sums of token hashes times per-offset multipliers. Only n-grams that repeat can matter, and an
  n-gram repeats only where its (n-1)-gram prefix repeats, so each larger n is grouped (sorted in parts
  of ~250K keys) on the shrinking set of repeated positions.
- Long documents: the per-character work runs in ~1M-character windows cut at whitespace and everything
  kept is per token, so memory grows with a document by a small constant (see `curate bench memory`).
- Lines: plain Python `str` methods, as lines are ~20x fewer than tokens.

Decisions match DataTrove's (same definitions, tokens within a few exceptions of spaCy's) except for
documents sitting right at a threshold; the tests measure the agreement on real documents.

Text is never rewritten, because curate stages only add columns: C4's line removal is evaluated
virtually (the lines C4 would keep decide the sentence count, lorem ipsum and curly bracket checks).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from curate.paths import PathParam
from curate.stages.base import StageParams
from curate.textwindows import WINDOW_CHARS, release_free_memory, whitespace_windows

# ----------------------------------------------------------------------------------------------- constants

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
"""Gopher's stop words; a document needs at least two *distinct* ones (case-sensitive, as DataTrove)."""

TERMINAL_PUNCTUATION = frozenset(".!?‼‽⁇⁈⁉。｡．！？﹒﹖﹗։؟۔܀܁܂।॥။၊።፧፨᙮᠃᠉។៕߹꓿꘎꘏꛳꛷⸮⸼᥄᥅")
"""Sentence terminals of the major scripts (Unicode's Sentence_Terminal property, common part): a line
ending in one counts as punctuated for FineWeb's line_punct_ratio. The ellipsis is deliberately absent."""

C4_END_PUNCTUATION = (".", "?", "!", '"', "'")
C4_POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
BULLETS = ("•", "-")
ELLIPSES = ("...", "…")

_CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_TERMINATOR_RUN_RE = re.compile("[" + re.escape("".join(sorted(TERMINAL_PUNCTUATION))) + "]+")
_WORD_FOLLOWS_RE = re.compile(r"[\s\"'”’)\]]*[^\s\"'”’)\].!?…]")
_ABBREVIATION_LIST = """
    Adm Ak Ala Apr Ariz Ark Aug Bros Calif Co Colo Conn Corp Dec Del Dr Feb Fla Ga Gen Gov Ia Id Ill Inc Ind
    Jan Jr Jul Jun Kan Kans Ky La Ltd Mar Mass Md Messrs Mich Minn Miss Mo Mont Mr Mrs Ms Mt Neb Nebr Nev Nov
    Oct Okla Ore Pa Prof Rep Rev Sen Sep Sept St Tenn Va Wash Wis co vs a b c d e f g h i j k l m n o p q r s
    t u v w x y z a.m p.m e.g i.e E.g I.e E.G I.E v.s Ph.D
"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_LIST.split())
"""Words keeping their period in spaCy's English tokenizer ('Mr.' is one token, 'Mr. Smith' one sentence)."""
_UNIT_LIST = (
    "km m dm cm mm ha nm yd in ft kg g mg t lb oz kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K am pm"
)
_UNITS = frozenset(_UNIT_LIST.split())
"""Units that spaCy splits off a number written against them (20cm -> 20 cm)."""
_OPENERS = "\"'([{“‘«"
_PARAGRAPH_SPLIT_RE = re.compile(r"\n{2,}")
_WORD_RUN_RE = re.compile(r"\w+")

CHUNK_CHARS = 1_000_000
"""Documents are evaluated in chunks of about this many characters: hash tables stay in cache."""

# Reason codes are `family:rule`. Families run in the order of DataTrove's FineWeb chain (repetition,
# quality, C4, FineWeb), so a document's first failed code (its drop reason) is the one DataTrove's chain
# would report first. An empty or whitespace-only document gets EMPTY and nothing else.
EMPTY = "heuristics:empty"


def _code(family: str, rule: str) -> str:
    return f"{family}:{rule}"


# ---------------------------------------------------------------------------------------------- parameters


class RuleFamily(BaseModel):
    """A family of rules that can be switched off as a whole; `None` on a threshold disables that rule."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True


class GopherRepetitionRules(RuleFamily):
    """Gopher (Rae et al. 2021, table A1): repeated lines, paragraphs and n-grams mark boilerplate/spam."""

    max_dup_para_frac: float | None = 0.3
    max_dup_para_char_frac: float | None = 0.2
    max_dup_line_frac: float | None = 0.3
    max_dup_line_char_frac: float | None = 0.2
    max_top_ngram_char_frac: dict[int, float] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    max_dup_ngram_char_frac: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )

    @field_validator("max_top_ngram_char_frac", "max_dup_ngram_char_frac")
    @classmethod
    def _ngram_sizes_are_sane(cls, value: dict[int, float]) -> dict[int, float]:
        bad = [n for n in value if not 2 <= n <= 32]
        if bad:
            raise ValueError(f"n-gram sizes must be between 2 and 32, got {bad}")
        return dict(sorted(value.items()))


class GopherQualityRules(RuleFamily):
    """Gopher's quality filter: document length, word shape, symbols, bullets and stop words."""

    min_words: int | None = 50
    max_words: int | None = 100_000
    min_mean_word_length: float | None = 3
    max_mean_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    stop_words: tuple[str, ...] = STOP_WORDS


class C4Rules(RuleFamily):
    """C4 (Raffel et al. 2020) as in DataTrove's C4QualityFilter, plus C4's bad-words rule.

    C4 removes lines that do not end in terminal punctuation, have fewer than 3 words, contain a word
    over 1000 chars, mention javascript or a cookie/terms policy. Here no text is removed: those lines just
    do not count towards `min_sentences`. Set `require_terminal_punct: false` for FineWeb's variant.
    """

    require_terminal_punct: bool = True
    min_words_per_line: int | None = 3
    max_word_length: int | None = 1000
    min_sentences: int | None = 5
    remove_citations: bool = True
    drop_javascript_lines: bool = True
    drop_policy_lines: bool = True
    reject_lorem_ipsum: bool = True
    reject_curly_bracket: bool = True
    reject_bad_words: bool = False
    """Off by default: better-profanity's list is made for chat and holds ordinary words ("god", "kill",
    "hell"), so rejecting on it would drop two thirds of Gutenberg passages. `rule_bad_word_count` is
    always written, for mixing predicates; set true for C4's strict behaviour."""
    bad_words_file: PathParam | None = None
    """One word or phrase per line; default: the English list shipped in the better-profanity package."""


class FineWebRules(RuleFamily):
    """FineWeb's own quality filter (Penedo et al. 2024), on non-blank lines split at '\\n'."""

    min_line_punct_ratio: float | None = 0.12
    line_punct_exclude_zero: bool = False
    max_short_line_ratio: float | None = 0.67
    short_line_length: int = 30
    max_char_dup_ratio: float | None = 0.01
    max_newline_ratio: float | None = 0.3


class RuleSet(StageParams):
    """All rule families, in evaluation order (the order of DataTrove's FineWeb pipeline)."""

    gopher_repetition: GopherRepetitionRules = Field(default_factory=GopherRepetitionRules)
    gopher_quality: GopherQualityRules = Field(default_factory=GopherQualityRules)
    c4: C4Rules = Field(default_factory=C4Rules)
    fineweb: FineWebRules = Field(default_factory=FineWebRules)


# ------------------------------------------------------------------------------------------------- tokens
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
            *_CHAR_CLASSES,
        ]
    )
}
_HASH_OFFSET = np.uint64(0x9E3779B97F4A7C15)
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
    return _bit(*names)


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
        # consecutive[k]: pos[k] directly follows pos[k - 1] in the same chunk
        self.consecutive = np.zeros(len(self.pos), dtype=bool)
        self.consecutive[1:] = (np.diff(self.pos) == 1) & ~first[self.pos[1:]]

    def has(self, names: str) -> np.ndarray:
        return (self.f & _bit(*names.split())) != 0

    def neighbour(self, offset: int, names: str) -> np.ndarray:
        """Class test on the character `offset` places away (negative: before), within the chunk."""
        valid = np.ones(len(self.pos), dtype=bool)
        edge = self.first if offset < 0 else self.last
        step = -1 if offset < 0 else 1
        for k in range(abs(offset)):
            valid &= ~edge[np.clip(self.pos + step * k, 0, len(edge) - 1)]
        where = np.clip(self.pos + offset, 0, len(self.flags) - 1)
        return valid & ((self.flags[where] & _bit(*names.split())) != 0)

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
    if url.any():
        chunk_starts = np.flatnonzero(s.first)
        url_chunks = np.searchsorted(chunk_starts, s.pos[url], side="right") - 1
        infix &= ~np.isin(np.searchsorted(chunk_starts, s.pos, side="right") - 1, url_chunks)
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
    values = (code_points.astype(np.uint64) + _HASH_OFFSET) * up[:n]
    cumulative = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum(values, out=cumulative[1:])
    ends = np.r_[segment_starts[1:], n]
    lengths = (ends - segment_starts).astype(np.uint64)
    return (cumulative[ends] - cumulative[segment_starts]) * down[segment_starts] ^ (lengths * _HASH_OFFSET)


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
    def from_texts(cls, texts: Sequence[str]) -> TokenTable:
        text = "\n".join(texts)
        doc_char_starts = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)) + 1, out=doc_char_starts[1:])
        parts = [_window_tokens(text[a:b], a, doc_char_starts) for a, b in whitespace_windows(text)]
        return cls(
            offsets=_offsets_of([p[0] for p in parts]),
            hashes=np.concatenate([p[1] for p in parts]),
            lengths=np.concatenate([p[2] for p in parts]),
            has_letter=np.concatenate([p[3] for p in parts]),
            is_word=np.concatenate([p[4] for p in parts]),
            text=text,
            doc_char_starts=doc_char_starts,
        )

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


def _window_tokens(window: str, base: int, doc_char_starts: np.ndarray) -> tuple[np.ndarray, ...]:
    """(tokens before each document start, then per token: hash, length, has_letter, is_word) of one
    window starting at character `base` of the chunk."""
    code_points = _code_points(window)
    flags = _lookup_flags(code_points)
    visible = np.flatnonzero((flags & _bit("space")) == 0)
    visible_flags, visible_points = flags[visible], code_points[visible]
    del code_points, flags
    first = np.ones(len(visible), dtype=bool)  # first character of a whitespace-separated chunk
    first[1:] = np.diff(visible) != 1
    last = np.zeros(len(visible), dtype=bool)
    last[:-1] = first[1:]
    last[-1:] = True
    first_char = np.flatnonzero(_token_starts(visible_flags, first, last, visible_points))
    return (
        _items_before(visible[first_char] + base, doc_char_starts),
        _segment_hashes(visible_points, first_char),
        np.diff(np.r_[first_char, len(visible)]).astype(np.int32),
        _any_per_segment((visible_flags & _bit("letter")) != 0, first_char),
        _any_per_segment((visible_flags & _bit("non_symbol")) != 0, first_char),
    )


def _window_word_runs(window: str, base: int, doc_char_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(runs before each document start, hash of each lowercased run) of the maximal runs of word chars
    of one window."""
    code_points = _code_points(window)
    word = (_lookup_flags(code_points) & _bit("word")) != 0
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


def tokenize(text: str) -> list[str]:
    """The tokens of one text as strings: for tests and debugging (the rules never build strings)."""
    table = TokenTable.from_texts([text])
    visible = [i for i, char in enumerate(text) if not char.isspace()]
    starts = np.r_[0, np.cumsum(table.lengths)[:-1]].astype(np.int64)
    return ["".join(text[i] for i in visible[a : a + n]) for a, n in zip(starts, table.lengths, strict=True)]


def _sum_per_segment(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    dtype = np.float64 if values.dtype.kind == "f" else np.int64
    cumulative = np.zeros(len(values) + 1, dtype=dtype)
    np.cumsum(values, out=cumulative[1:])
    return cumulative[offsets[1:]] - cumulative[offsets[:-1]]


def _any_per_segment(values: np.ndarray, segment_starts: np.ndarray) -> np.ndarray:
    offsets = np.r_[segment_starts, len(values)]
    return _sum_per_segment(values, offsets) > 0


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


def distinct_stop_words(tokens: TokenTable, stop_words: HashSet) -> np.ndarray:
    """How many distinct stop words (exact, case-sensitive tokens) each document contains."""
    hits, which = stop_words.hits(tokens.hashes)
    keys = np.unique(tokens.doc_of(hits) * len(stop_words) + which)
    return np.bincount(keys // max(len(stop_words), 1), minlength=tokens.n_docs)


# ------------------------------------------------------------------------------------------------ n-grams


_BLOCK = 1 << 16
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
        part = keys[index]
        order = np.argsort(part, kind="stable")  # equal keys keep their order: a run starts at its first
        ordered = part[order]
        starts = np.r_[True, ordered[1:] != ordered[:-1]] if len(part) else np.zeros(0, dtype=bool)
        del ordered
        run = np.cumsum(starts) - 1
        repeated_run = np.bincount(run) >= 2 if len(run) else np.zeros(0, dtype=bool)
        keep = repeated_run[run]
        local = np.cumsum(repeated_run) - 1
        offset = sum(map(len, firsts))
        groups[index[order[keep]]] = local[run[keep]] + offset
        firsts.append(index[order[starts & keep]])
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


def _key_parts(keys: np.ndarray) -> Iterator[np.ndarray]:
    """Index arrays splitting the keys by their top bits into parts of about `_PART_KEYS` keys."""
    bits = max(0, int(np.ceil(np.log2(max(len(keys), 1) / _PART_KEYS))))
    if bits == 0:
        yield np.arange(len(keys))
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
        """Whether an n-gram starts at each position (n tokens left in its document), in blocks: nothing
        per token is stored for it (a 50 MB document has ~11 M tokens)."""
        out = np.empty(len(positions), dtype=bool)
        ends = self.tokens.offsets[1:]
        for start in range(0, len(positions), _BLOCK):
            block = positions[start : start + _BLOCK]
            out[start : start + _BLOCK] = ends[self.tokens.doc_of(block)] - block >= n
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


# ---------------------------------------------------------------------------------------------- bad words


def default_bad_words() -> list[str]:
    """The English list shipped inside better-profanity (MIT): read as data, the library is not used."""
    text = resources.files("better_profanity").joinpath("profanity_wordlist.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


class BadWordMatcher:
    """C4's bad-words rule: a word or phrase of the list flanked by non-word chars in the lowercased text.

    Single words are looked up as hashes of the text's lowercased word runs. Phrases (`2 girls 1 cup`,
    `s.h.i.t.`) are confirmed with C4's regex only in documents that hold every word run of the phrase.
    """

    def __init__(self, words: Sequence[str]) -> None:
        words = sorted({w.strip().lower() for w in words if w.strip()})
        self.single_words = HashSet(hash_strings([w for w in words if _WORD_RUN_RE.fullmatch(w)]))
        self.phrases = [w for w in words if not _WORD_RUN_RE.fullmatch(w)]
        runs = sorted({run for p in self.phrases for run in _WORD_RUN_RE.findall(p)})
        self.gate_runs = HashSet(hash_strings(runs))
        self.column_of_gate = np.argsort(np.searchsorted(self.gate_runs.sorted, hash_strings(runs)))
        self.phrase_runs = np.zeros((len(self.phrases), len(runs)), dtype=np.int64)
        for i, phrase in enumerate(self.phrases):
            for run in set(_WORD_RUN_RE.findall(phrase)):
                self.phrase_runs[i, runs.index(run)] = 1
        self.runs_needed = self.phrase_runs.sum(axis=1)

    @classmethod
    def from_file(cls, path: str | None) -> BadWordMatcher:
        if path is None:
            return cls(default_bad_words())
        return cls(Path(path).read_text("utf-8").splitlines())

    def count(self, texts: Sequence[str], tokens: TokenTable) -> np.ndarray:
        """Bad words and phrases found per document (0 keeps the document)."""
        run_hashes, run_offsets = tokens.word_runs()
        hits, _ = self.single_words.hits(run_hashes)
        counts = np.diff(np.searchsorted(hits, run_offsets)).astype(np.int64)
        if self.phrases:
            counts += self._count_phrases(texts, run_hashes, run_offsets)
        return counts

    def _count_phrases(
        self, texts: Sequence[str], run_hashes: np.ndarray, run_offsets: np.ndarray
    ) -> np.ndarray:
        """Documents holding every run of a phrase are checked for the phrase as C4's regex would."""
        n_docs = len(run_offsets) - 1
        counts = np.zeros(n_docs, dtype=np.int64)
        hits, which = self.gate_runs.hits(run_hashes)
        present = np.zeros((n_docs, self.phrase_runs.shape[1]), dtype=np.int64)
        present[np.searchsorted(run_offsets, hits, side="right") - 1, self.column_of_gate[which]] = 1
        candidates = np.argwhere(present @ self.phrase_runs.T >= self.runs_needed)
        for doc in np.unique(candidates[:, 0]).tolist():
            phrases = [self.phrases[p] for p in candidates[candidates[:, 0] == doc, 1].tolist()]
            counts[doc] += len(phrases_in(texts[doc], phrases))
        return counts


def lowered_windows(text: str, tail: int) -> Iterator[tuple[str, int]]:
    """text.lower() in pieces: (segment, own) per window of text cut at whitespace, where the segment is
    the window lower-cased (`own` characters) followed by the next `tail` characters lower-cased.

    Lower-casing never looks across whitespace, so the windows' own parts join into text.lower(); the
    tail lets a string of up to `tail` characters that starts in a window be found there. Only a final
    sigma at a tail's end can differ from the whole text's, which no ASCII needle can notice.
    """
    for start, stop in whitespace_windows(text):
        own = text[start:stop].lower()
        yield own + text[stop : stop + tail].lower(), len(own)


def _is_word_char(char: str) -> bool:
    """Python's \\w on a str: alphanumeric or underscore."""
    return char.isalnum() or char == "_"


def phrases_in(text: str, phrases: Sequence[str]) -> set[str]:
    """The phrases for which C4's `(?:\\W|^)phrase(?:\\W|$)` matches text.lower(), lower-casing a long
    text one window at a time. A window after the first starts at whitespace, which no phrase starts
    with, so a phrase found at a segment's start is at the start of the text."""
    found: set[str] = set()
    for segment, own in lowered_windows(text, max(map(len, phrases), default=0) + 1):
        found.update(
            phrase for phrase in phrases if phrase not in found and _has_phrase(segment, own, phrase)
        )
    return found


def _has_phrase(segment: str, own: int, phrase: str) -> bool:
    """The phrase, flanked by non-word characters or the text's ends, starts in the segment's own part."""
    at = segment.find(phrase)
    while 0 <= at < own:
        end = at + len(phrase)
        before_ok = at == 0 or not _is_word_char(segment[at - 1])
        if before_ok and (end == len(segment) or not _is_word_char(segment[end])):
            return True
        at = segment.find(phrase, at + 1)
    return False


# ------------------------------------------------------------------------------------ per-document helpers


def duplicate_stats(parts: list[str]) -> tuple[int, int]:
    """(elements equal to an earlier one, their characters): Gopher's duplicate counting via one set."""
    unique = set(parts)
    if len(unique) == len(parts):
        return 0, 0
    return len(parts) - len(unique), sum(map(len, parts)) - sum(map(len, unique))


def paragraph_and_line_duplicates(text: str) -> tuple[float, float, float, float]:
    """Gopher repetition on paragraphs ('\\n\\n+') and lines ('\\n+'): element and char fractions."""
    n_chars = max(len(text), 1)
    para_frac = para_chars = 0.0
    stripped = text.strip()
    if "\n\n" in stripped:
        # str.split is ~5x faster than the regex and identical when no run of 3+ newlines exists
        paragraphs = (
            stripped.split("\n\n") if "\n\n\n" not in stripped else _PARAGRAPH_SPLIT_RE.split(stripped)
        )
        duplicates, chars = duplicate_stats(paragraphs)
        para_frac, para_chars = duplicates / len(paragraphs), chars / n_chars
    n_lines, duplicates, chars = _line_duplicates(text)
    return para_frac, para_chars, duplicates / n_lines, chars / n_chars


def _line_duplicates(text: str) -> tuple[int, int, int]:
    """duplicate_stats of re.split('\\n+', text) without the regex: split at every '\\n', then account
    for the empty strings re.split would not produce (it keeps one only at each end)."""
    parts = text.split("\n")
    unique = set(parts)
    empty = parts.count("")
    ends = (parts[0] == "") + (len(parts) > 1 and parts[-1] == "")
    n_lines = len(parts) - empty + ends
    n_unique = len(unique) - ("" in unique) + (ends > 0)
    if n_unique == n_lines:
        return n_lines, 0, 0
    return n_lines, n_lines - n_unique, sum(map(len, parts)) - sum(map(len, unique))


def bullet_and_ellipsis_lines(text: str, lines: list[str]) -> tuple[int, int, int]:
    """(lines, lines starting with a bullet, lines ending in an ellipsis); lines = text.splitlines()."""
    bullets = ellipsis = 0
    if "•" in text or "-" in text:
        bullets = sum(1 for line in lines if line.lstrip().startswith(BULLETS))
    if "..." in text or "…" in text:
        ellipsis = sum(1 for line in lines if line.rstrip().endswith(ELLIPSES))
    return max(len(lines), 1), bullets, ellipsis


def fineweb_line_stats(text: str, short_line_length: int) -> tuple[int, int, int, int]:
    """(non-blank lines, lines ending in terminal punctuation, short lines, chars in repeated lines)."""
    lines = [line for line in text.split("\n") if line and not line.isspace()]
    if not lines:
        return 0, 0, 0, 0
    punctuated = sum(1 for line in lines if line[-1] in TERMINAL_PUNCTUATION)
    short = sum(1 for line in lines if len(line) <= short_line_length)
    return len(lines), punctuated, short, duplicate_stats(lines)[1]


def count_sentences(line: str) -> int:
    """Sentences in a line as spaCy's sentencizer counts them: a new one starts at the first word after
    a terminator token ('.', '!', '?', ...). A non-empty line is at least one sentence."""
    sentences = 1
    for match in _TERMINATOR_RUN_RE.finditer(line):
        start, end = match.span()
        if _is_terminator_token(line, start, end) and _WORD_FOLLOWS_RE.match(line, end):
            sentences += 1
    return sentences


def _is_terminator_token(line: str, start: int, end: int) -> bool:
    """Whether the run line[start:end] holds a token that ends a sentence, as spaCy would split it.

    '..' and '…' are not terminators; a single '.' is one only where the tokenizer splits it off:
    'end.', 'end.Next', '4.' but not '3.5', 'U.S.', 'e.g.', 'Mr.'.
    """
    run = line[start:end]
    if run.strip("."):
        return True  # ! ? or another script's terminator
    if len(run) > 1:
        return False
    before = line[start - 1] if start else ""
    after = line[end] if end < len(line) else ""
    if after.isalnum():
        return before.islower() and after.isupper()
    if before.isalpha():
        word = line[line.rfind(" ", 0, start) + 1 : start].lstrip(_OPENERS)
        if word in _ABBREVIATIONS:
            return False
    if before.islower() or before.isdigit() or before in _DOT_SPLITS_AFTER:
        return True
    return before.isupper() and start >= 2 and line[start - 2].isupper()


def c4_document_checks(text: str, rules: C4Rules, lines: list[str] | None = None) -> tuple[bool, bool, int]:
    """(has lorem ipsum, has a curly bracket, sentences in the lines C4 keeps), in DataTrove's line order.

    Substrings absent from the whole document are never searched per line, and without lorem ipsum or
    '{' only the sentence count can fail, so counting stops as soon as `min_sentences` is reached.
    """
    present = _lowered_substrings(text, ("lorem ipsum", "javascript", *C4_POLICY_SUBSTRINGS))
    may_lorem = rules.reject_lorem_ipsum and "lorem ipsum" in present
    may_curly = rules.reject_curly_bracket and "{" in text
    may_javascript = rules.drop_javascript_lines and "javascript" in present
    may_policy = rules.drop_policy_lines and any(p in present for p in C4_POLICY_SUBSTRINGS)
    need = rules.min_sentences or 0
    stop_early = not (may_lorem or may_curly)
    has_lorem = has_curly = False
    sentences = 0
    limit = rules.max_word_length
    for raw in text.splitlines() if lines is None else lines:
        line = raw.strip()
        if not line or (limit and len(line) > limit and not _c4_keeps_line_shape(line, rules)):
            continue
        if rules.remove_citations and "[" in line:
            line = _CITATION_RE.sub("", line)
        if rules.require_terminal_punct and (not line.endswith(C4_END_PUNCTUATION) or line.endswith("...")):
            continue
        if rules.min_words_per_line and len(raw.split()) < rules.min_words_per_line:
            continue
        lowered_line = line.lower() if (may_lorem or may_javascript or may_policy) else ""
        has_lorem = has_lorem or (may_lorem and "lorem ipsum" in lowered_line)
        if may_javascript and "javascript" in lowered_line:
            continue
        has_curly = has_curly or (may_curly and "{" in line)
        if may_policy and any(p in lowered_line for p in C4_POLICY_SUBSTRINGS):
            continue
        sentences += count_sentences(line)
        if stop_early and sentences >= need:
            break
    return has_lorem, has_curly, sentences


def _lowered_substrings(text: str, needles: Sequence[str]) -> set[str]:
    """The needles found in text.lower(), window by window (see lowered_windows)."""
    found: set[str] = set()
    for segment, _ in lowered_windows(text, max(map(len, needles))):
        found.update(needle for needle in needles if needle in segment)
    return found


def _c4_keeps_line_shape(line: str, rules: C4Rules) -> bool:
    """C4 drops lines holding a word longer than max_word_length (minified code, base64 blobs)."""
    limit = rules.max_word_length
    return not (limit and len(line) > limit and any(len(word) > limit for word in line.split()))


# --------------------------------------------------------------------------------------------- evaluation


SIGNAL_FIELDS: list[pa.Field] = [
    pa.field("rule_word_count", pa.int32()),
    pa.field("rule_mean_word_length", pa.float32()),
    pa.field("rule_alpha_word_frac", pa.float32()),
    pa.field("rule_dup_line_char_frac", pa.float32()),
    pa.field("rule_dup_ngram_char_frac", pa.float32()),
    pa.field("rule_line_punct_frac", pa.float32()),
    pa.field("rule_bad_word_count", pa.int32()),
]
"""Numeric signals kept for mixing; null when their family (or rule) is disabled."""


@dataclass
class RuleReport:
    """Per-document outcome: `failed[i, j]` is True when document i fails rule `codes[j]`."""

    codes: list[str]
    failed: np.ndarray
    signals: dict[str, np.ndarray]

    def flags(self) -> list[str]:
        """Comma-separated failed codes per document, '' when it passes every rule."""
        out = [""] * len(self.failed)
        for doc in np.flatnonzero(self.failed.any(axis=1)).tolist():
            out[doc] = ",".join(self.codes[j] for j in np.flatnonzero(self.failed[doc]).tolist())
        return out

    def first_failed(self) -> list[str | None]:
        """The drop reason of each document: its first failed code in evaluation order, else None."""
        out: list[str | None] = [None] * len(self.failed)
        for doc in np.flatnonzero(self.failed.any(axis=1)).tolist():
            out[doc] = self.codes[int(np.argmax(self.failed[doc]))]
        return out


class _Checks:
    """Collects (code, failed-array) in evaluation order while a chunk is evaluated."""

    def __init__(self) -> None:
        self.codes: list[str] = []
        self.failed: list[np.ndarray] = []

    def add(self, code: str, failed: np.ndarray) -> None:
        self.codes.append(code)
        self.failed.append(np.asarray(failed, dtype=bool))


class RuleEngine:
    """Evaluates a RuleSet on lists of texts. Build once per worker (it loads the bad-word list)."""

    def __init__(self, rules: RuleSet | None = None) -> None:
        self.rules = rules or RuleSet()
        c4 = self.rules.c4
        self.stop_words = HashSet(hash_strings(self.rules.gopher_quality.stop_words))
        self.bad_words = BadWordMatcher.from_file(c4.bad_words_file) if c4.enabled else None

    @property
    def codes(self) -> list[str]:
        """Every reason code this configuration can emit, in evaluation order."""
        return self._evaluate_chunk(["probe"]).codes

    def evaluate(self, texts: Sequence[str | None]) -> RuleReport:
        texts = [text or "" for text in texts]
        reports = [self._evaluate_chunk(texts[start:stop]) for start, stop in _chunks(texts, CHUNK_CHARS)]
        if not reports:
            reports = [self._evaluate_chunk([])]
        return RuleReport(
            codes=reports[0].codes,
            failed=np.concatenate([r.failed for r in reports]),
            signals={k: np.concatenate([r.signals[k] for r in reports]) for k in reports[0].signals},
        )

    def _evaluate_chunk(self, texts: list[str]) -> RuleReport:
        rules = self.rules
        n_chars = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        empty = np.fromiter((not t or t.isspace() for t in texts), dtype=bool, count=len(texts))
        needs_tokens = (
            rules.gopher_repetition.enabled
            or rules.gopher_quality.enabled
            or rules.fineweb.enabled
            or self.bad_words is not None
        )
        release = functools.partial(_release_after_long, n_chars)
        tokens = TokenTable.from_texts(texts) if needs_tokens else None
        release()
        checks = _Checks()
        checks.add(EMPTY, empty)
        signals = {f.name: np.full(len(texts), np.nan) for f in SIGNAL_FIELDS}
        if rules.gopher_repetition.enabled:
            self._gopher_repetition(texts, n_chars, tokens, checks, signals)
            release()
        # split after the n-gram walk, the peak of a long document, so the lines never add to it
        lines = [t.splitlines() for t in texts] if rules.gopher_quality.enabled or rules.c4.enabled else []
        if rules.gopher_quality.enabled:
            self._gopher_quality(texts, lines, tokens, checks, signals)
        if rules.c4.enabled:
            self._c4(texts, lines, tokens, checks, signals)
        del lines
        release()
        if rules.fineweb.enabled:
            self._fineweb(texts, tokens, checks, signals)
        failed = np.stack(checks.failed, axis=1) if texts else np.zeros((0, len(checks.codes)), dtype=bool)
        failed[empty, 1:] = False  # an empty document gets the one clear reason
        return RuleReport(codes=checks.codes, failed=failed, signals=signals)

    # -- families ------------------------------------------------------------------------------------------

    def _gopher_repetition(self, texts, n_chars, tokens, checks: _Checks, signals) -> None:
        rules, family = self.rules.gopher_repetition, "gopher_repetition"
        stats = np.array([paragraph_and_line_duplicates(t) for t in texts], dtype=np.float64).reshape(-1, 4)
        _release_after_long(n_chars)
        para_frac, para_chars, line_frac, line_chars = stats.T
        _max_rule(checks, _code(family, "dup_para_frac"), para_frac, rules.max_dup_para_frac)
        _max_rule(checks, _code(family, "dup_para_char_frac"), para_chars, rules.max_dup_para_char_frac)
        _max_rule(checks, _code(family, "dup_line_frac"), line_frac, rules.max_dup_line_frac)
        _max_rule(checks, _code(family, "dup_line_char_frac"), line_chars, rules.max_dup_line_char_frac)
        tops, dups = rules.max_top_ngram_char_frac, rules.max_dup_ngram_char_frac
        ngrams = NgramRepetition(tokens, n_chars).measure(list(tops), list(dups))
        for n, limit in tops.items():
            checks.add(_code(family, f"top_{n}gram_char_frac"), ngrams[("top", n)] > limit)
        for n, limit in dups.items():
            checks.add(_code(family, f"dup_{n}gram_char_frac"), ngrams[("dup", n)] > limit)
        signals["rule_dup_line_char_frac"] = line_chars
        if dups:
            signals["rule_dup_ngram_char_frac"] = ngrams[("dup", min(dups))]

    def _gopher_quality(self, texts, lines_of, tokens: TokenTable, checks: _Checks, signals) -> None:
        rules, family = self.rules.gopher_quality, "gopher_quality"
        n_tokens = np.maximum(tokens.counts, 1)
        n_words = tokens.per_doc_sum(tokens.is_word)
        mean_length = tokens.per_doc_sum(tokens.lengths * tokens.is_word) / np.maximum(n_words, 1)
        alpha_frac = tokens.per_doc_sum(tokens.has_letter) / n_tokens
        symbols = np.array([max(t.count("#"), t.count("...") + t.count("…")) for t in texts], dtype=np.int64)
        lines = np.array(
            [bullet_and_ellipsis_lines(t, ls) for t, ls in zip(texts, lines_of, strict=True)], dtype=np.int64
        ).reshape(-1, 3)

        checks.add(
            _code(family, "word_count"),
            _below(n_words, rules.min_words) | _above(n_words, rules.max_words),
        )
        checks.add(
            _code(family, "mean_word_length"),
            _below(mean_length, rules.min_mean_word_length) | _above(mean_length, rules.max_mean_word_length),
        )
        _max_rule(checks, _code(family, "symbol_word_ratio"), symbols / n_tokens, rules.max_symbol_word_ratio)
        _max_rule(
            checks, _code(family, "bullet_lines"), lines[:, 1] / lines[:, 0], rules.max_bullet_lines_ratio
        )
        _max_rule(
            checks, _code(family, "ellipsis_lines"), lines[:, 2] / lines[:, 0], rules.max_ellipsis_lines_ratio
        )
        _min_rule(checks, _code(family, "alpha_words"), alpha_frac, rules.min_alpha_words_ratio)
        if rules.min_stop_words is not None:
            distinct = distinct_stop_words(tokens, self.stop_words)
            checks.add(_code(family, "stop_words"), distinct < rules.min_stop_words)
        signals["rule_word_count"] = n_words
        signals["rule_mean_word_length"] = mean_length
        signals["rule_alpha_word_frac"] = alpha_frac

    def _c4(self, texts, lines_of, tokens, checks: _Checks, signals) -> None:
        rules, family = self.rules.c4, "c4"
        results = [c4_document_checks(t, rules, ls) for t, ls in zip(texts, lines_of, strict=True)]
        lorem = np.array([r[0] for r in results], dtype=bool)
        curly = np.array([r[1] for r in results], dtype=bool)
        sentences = np.array([r[2] for r in results], dtype=np.int64)
        if rules.reject_lorem_ipsum:
            checks.add(_code(family, "lorem_ipsum"), lorem)
        if rules.reject_curly_bracket:
            checks.add(_code(family, "curly_bracket"), curly)
        if rules.min_sentences is not None:
            checks.add(_code(family, "too_few_sentences"), sentences < rules.min_sentences)
        if self.bad_words is not None:
            bad = self.bad_words.count(texts, tokens)
            if rules.reject_bad_words:
                checks.add(_code(family, "bad_words"), bad > 0)
            signals["rule_bad_word_count"] = bad

    def _fineweb(self, texts, tokens: TokenTable, checks: _Checks, signals) -> None:
        rules, family = self.rules.fineweb, "fineweb"
        stats = np.array(
            [fineweb_line_stats(t, rules.short_line_length) for t in texts], dtype=np.float64
        ).reshape(-1, 4)
        n_lines, punctuated, short, dup_chars = stats.T
        lines = np.maximum(n_lines, 1)
        punct_ratio = punctuated / lines
        if rules.min_line_punct_ratio is not None:
            low = punct_ratio < rules.min_line_punct_ratio
            if rules.line_punct_exclude_zero:
                low &= punct_ratio > 0
            checks.add(_code(family, "line_punct_ratio"), low | (n_lines == 0))
        _max_rule(checks, _code(family, "short_line_ratio"), short / lines, rules.max_short_line_ratio)
        newlines = np.array([t.count("\n") for t in texts], dtype=np.float64)
        visible_chars = np.maximum(np.fromiter(map(len, texts), np.float64, len(texts)) - newlines, 1)
        _max_rule(
            checks, _code(family, "char_dup_ratio"), dup_chars / visible_chars, rules.max_char_dup_ratio
        )
        _max_rule(
            checks,
            _code(family, "newline_ratio"),
            newlines / np.maximum(tokens.counts, 1),
            rules.max_newline_ratio,
        )
        signals["rule_line_punct_frac"] = punct_ratio


def _release_after_long(n_chars: np.ndarray) -> None:
    """A long document's steps free hundreds of MB of temporaries that the C heap would keep resident
    under the next step's peak: between steps they are given back (a chunk of short texts skips it)."""
    if int(n_chars.sum()) > WINDOW_CHARS:
        release_free_memory()


def _below(values: np.ndarray, limit: float | None) -> np.ndarray:
    return values < limit if limit is not None else np.zeros(len(values), dtype=bool)


def _above(values: np.ndarray, limit: float | None) -> np.ndarray:
    return values > limit if limit is not None else np.zeros(len(values), dtype=bool)


def _max_rule(checks: _Checks, code: str, values: np.ndarray, limit: float | None) -> None:
    if limit is not None:
        checks.add(code, values > limit)


def _min_rule(checks: _Checks, code: str, values: np.ndarray, limit: float | None) -> None:
    if limit is not None:
        checks.add(code, values < limit)


def _chunks(texts: Sequence[str], max_chars: int) -> list[tuple[int, int]]:
    """Consecutive [start, stop) ranges of about max_chars characters (a long document gets its own)."""
    ranges, start, size = [], 0, 0
    for i, text in enumerate(texts):
        if size and size + len(text) > max_chars:
            ranges.append((start, i))
            start, size = i, 0
        size += len(text)
    if start < len(texts):
        ranges.append((start, len(texts)))
    return ranges

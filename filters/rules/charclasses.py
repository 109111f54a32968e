"""What the tokenizer knows about characters: class bits per code point (a table for the Basic
Multilingual Plane, computed for astral characters), lowercase, the ASCII keys of spaCy's exceptions
(abbreviations, units, clitics), and the constants of the token hash."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import numba
import numpy as np

from filters.rules.settings import _ABBREVIATIONS, _UNITS

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


def _lowercase(code_points: np.ndarray) -> np.ndarray:
    table = _unicode_tables()[1]
    if not len(code_points) or code_points.max() < 0x10000:
        return table[code_points]
    return np.where(code_points < 0x10000, table[np.minimum(code_points, 0xFFFF)], code_points)


def _pack_ascii(word: str) -> int:
    """A word of at most 6 ASCII chars as one integer (what _ascii_keys computes from the text)."""
    return len(word) << 56 | sum(ord(ch) << (8 * k) for k, ch in enumerate(word))


_ABBREVIATION_KEYS = np.array(sorted(_pack_ascii(w[::-1]) for w in _ABBREVIATIONS), dtype=np.uint64)
_UNIT_KEYS = np.array(sorted(_pack_ascii(w) for w in _UNITS), dtype=np.uint64)


_CLITIC_KEYS = np.array(
    sorted(_pack_ascii(w) for c in ("s", "m", "d", "ll", "re", "ve") for w in (c, c.upper())), dtype=np.uint64
)


_HASH_OFFSET = np.uint64(0x9E3779B97F4A7C15)
_HASH_BASE = np.uint64(0x2545F4914F6CDD1D)  # odd, so invertible mod 2^64
"""A token's hash: sum (code point + _HASH_OFFSET) * _HASH_BASE^i over its characters (mod 2^64), xor its
length times _HASH_OFFSET: equal strings, equal hashes, wherever they are."""


def astral_flags(code_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct code points beyond the BMP, their class bits): the few the table does not hold."""
    if not len(code_points) or code_points.max() < 0x10000:
        return np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.uint32)
    points = np.unique(code_points[code_points >= 0x10000])
    return points, np.array([_char_flags(chr(cp)) for cp in points.tolist()], dtype=np.uint32)


# class bits the compiled tokenizer and its affix rules test
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


@numba.njit(cache=True, inline="always")
def _lower(code_point, lower_table):
    """A code point lowercased by the table (which covers the BMP; beyond it, unchanged)."""
    return lower_table[code_point] if code_point < 0x10000 else code_point

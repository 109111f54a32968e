"""Per-code-point tables for the compiled text passes (`filters.lm_normalize_kernel`,
`filters.word_list_kernel`): the KenLM normalisation's character classes and replacements, and the
word-list tokenizer's whitespace and trim characters.

Why tables asked of Arrow: the plain passes these kernels replace are Arrow kernels (RE2 for the regex
classes, utf8proc for NFD, Arrow's own whitespace split and trim). Every table here is what those very
engines answer for every Unicode scalar value (one array of all 1,112,064 of them), so the kernels
cannot drift from them when Arrow's Unicode version moves. Built once per process (~0.5 s, cached).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PUNCTUATION_TO = {
    '"': "„”“«»１」「《》",
    "'": "´’",
    ",": "，、",
    ":": "∶：",
    "?": "？",
    "!": "！",
    "(": "（",
    ")": "）",
    ";": "；",
    "-": "–━►",
    "~": "～",
    "<": "〈",
    ">": "〉",
    "[": "【",
    "]": "】",
    "%": "％",
}
"""CCNet's UNICODE_PUNCT map grouped by replacement; the multi-character ones are PUNCTUATION_MULTI."""
PUNCTUATION_MULTI = {"。": ". ", "．": ". ", "—": " - ", "…": "..."}
PUNCTUATION = {source: target for target, sources in PUNCTUATION_TO.items() for source in sources}
PUNCTUATION.update(PUNCTUATION_MULTI)
"""Every replacement (each source one non-ASCII character, each target ASCII)."""

NON_PRINTING = r"\x00-\x08\x0b-\x1f\x7f-\x9f\p{Cf}"
"""CCNet's non-printing characters: controls other than newline and tab, and format characters."""
SPACES = r" \t\r\v\f\x{a0}\x{2000}-\x{200a}\x{3000}"
"""The characters a run of which becomes one space."""
REMOVED = rf"[\p{{Mn}}{NON_PRINTING}]"
DIGIT = r"\p{Nd}"
PUNCT_OR_SYMBOL = r"[\p{P}\p{S}]"

WORD_TRIM = "\"'.,;:!?()[]{}<>*_~`#@"
"""Trimmed from both ends of a token before the word-list lookup (`filters.toxicity.profanity_rate`)."""

# A code point's class in `NormalizationTables.classes`: what the normalisation does to it, in its order.
POST_MASK = 0b11
"""Low two bits, the class the steps after the punctuation map see: one of"""
OTHER, SPLIT, SPACE, NEWLINE = 0, 1, 2, 3
"""kept as is; split off as its own token (punctuation or symbol); a space; a newline."""
PRE_SHIFT = 2
"""Next three bits, what the earlier steps do to it (NFD first, then removal, digits, punctuation map):"""
KEEP, REMOVE, ZERO, PUNCTUATION_SOURCE, DECOMPOSE = range(5)
HARD = 1 << 5
"""NFD must reorder it (a non-zero combining class, and not removed), or its decomposition holds one."""


@dataclass(frozen=True)
class NormalizationTables:
    """What the normalisation kernel needs to know of every code point."""

    classes: np.ndarray
    """uint8 per code point: POST class | PRE class << PRE_SHIFT | HARD."""
    keys: np.ndarray
    """int32, ascending: the code points replaced by a sequence (PUNCTUATION sources, DECOMPOSE ones)."""
    starts: np.ndarray
    """int32, len(keys) + 1: where each key's replacement starts in `replacements`."""
    replacements: np.ndarray
    """int32 code points: a source's ASCII target, a decomposing code point's NFD."""
    max_output: int
    """The most UTF-8 bytes one input code point, so one input byte, can write (each written character may
    add a separator)."""


def all_code_points() -> tuple[np.ndarray, pa.Array]:
    """Every Unicode scalar value (surrogates excluded), ascending, and the same as one-character strings."""
    codes = np.concatenate([np.arange(0xD800), np.arange(0xE000, 0x110000)]).astype(np.uint32)
    data = codes.astype("<u4").tobytes().decode("utf-32-le").encode("utf-8")
    widths = 1 + (codes >= 0x80).astype(np.int32) + (codes >= 0x800) + (codes >= 0x10000)
    offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int32)
    return codes, pa.Array.from_buffers(
        pa.string(), len(codes), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _per_code_point(codes: np.ndarray, values: pa.BooleanArray) -> np.ndarray:
    """A table over all code points from one boolean (no nulls) per scalar value (surrogates: False).
    The bitmap is unpacked directly: `to_numpy` of a million booleans costs ten times more."""
    bits = np.unpackbits(np.frombuffer(values.buffers()[1], np.uint8), bitorder="little")
    table = np.zeros(0x110000, dtype=bool)
    table[codes] = bits[values.offset : values.offset + len(values)].view(bool)
    return table


@lru_cache(maxsize=1)
def normalization_tables() -> NormalizationTables:
    """The classes and replacements of `filters.kenlm_lm.normalize_for_lm`, asked of RE2 and utf8proc."""
    codes, chars = all_code_points()
    nfd = pc.utf8_normalize(chars, form="NFD")
    changed = pc.not_equal(nfd, chars)
    decomposes = _per_code_point(codes, changed)
    decomposed = dict(
        zip(
            codes[decomposes[codes]].tolist(),
            map(_code_points, nfd.filter(changed).to_pylist()),
            strict=True,
        )
    )

    def matching(pattern: str) -> np.ndarray:
        return _per_code_point(codes, pc.match_substring_regex(chars, pattern))

    removed = matching(REMOVED)
    pre = np.full(0x110000, KEEP, np.uint8)
    pre[list(map(ord, PUNCTUATION))] = PUNCTUATION_SOURCE
    pre[matching(DIGIT)] = ZERO  # later passes first: NFD, removal, digits, then the punctuation map
    pre[removed] = REMOVE
    pre[decomposes] = DECOMPOSE
    post = np.full(0x110000, OTHER, np.uint8)
    split, space = matching(PUNCT_OR_SYMBOL), matching(f"[{SPACES}]")
    if (split & space).any() or split[ord("\n")] or space[ord("\n")]:
        raise RuntimeError("punctuation, spaces and newline overlap: the kernel's one class each is wrong")
    post[split], post[space], post[ord("\n")] = SPLIT, SPACE, NEWLINE
    # NFD moves a character iff its combining class is non-zero: then "a" U+0301 c U+0334 is reordered
    probe = pc.binary_join_element_wise("a\u0301", chars, "\u0334", "")
    reordered = _per_code_point(codes, pc.not_equal(pc.utf8_normalize(probe, form="NFD"), probe))
    hard = reordered & ~decomposes & ~removed
    for code, parts in decomposed.items():
        hard[code] = hard[parts].any()
    classes = post | (pre << PRE_SHIFT) | hard.astype(np.uint8) * HARD
    replaced = {ord(s): _code_points(t) for s, t in PUNCTUATION.items()} | decomposed
    keys = sorted(replaced)
    starts = np.cumsum([0] + [len(replaced[k]) for k in keys])
    written = (_written(replaced, pre, k) for k in keys)
    return NormalizationTables(
        classes,
        np.array(keys, np.int32),
        starts.astype(np.int32),
        np.array([p for k in keys for p in replaced[k]], np.int32),
        max(5, *(sum(1 + len(chr(c).encode()) for c in chars) for chars in written)),
    )


def _code_points(text: str) -> list[int]:
    return [ord(c) for c in text]


def _written(replaced: dict[int, list[int]], pre: np.ndarray, code: int) -> list[int]:
    """The characters one code point becomes (for the output bound): NFD, then each part's fate."""
    parts = replaced[code] if pre[code] == DECOMPOSE else [code]
    out: list[int] = []
    for part in parts:
        fate = pre[part]
        out += [] if fate == REMOVE else [ord("0")] if fate == ZERO else replaced.get(part, [part])
    return out


@lru_cache(maxsize=4)
def token_classes(trim: str) -> np.ndarray:
    """uint8 per code point for the word-list tokenizer (`filters.toxicity.profanity_rate`): bit 0 set on
    what Arrow's `utf8_split_whitespace` splits at, bit 1 on what `utf8_trim(..., trim)` removes."""
    codes, chars = all_code_points()
    pieces = pc.list_value_length(pc.utf8_split_whitespace(pc.binary_join_element_wise("a", chars, "b", "")))
    whitespace = _per_code_point(codes, pc.equal(pieces, 2))
    trimmed = _per_code_point(codes, pc.equal(pc.binary_length(pc.utf8_trim(chars, trim)), 0))
    return (whitespace | (trimmed.astype(np.uint8) << 1)).astype(np.uint8)

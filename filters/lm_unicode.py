"""The Unicode steps of the KenLM normalisation (`filters.kenlm_lm.normalize_for_lm`), done where they
can change something.

Why a module of its own: CCNet's steps are simple, but done naively over a whole batch they cost most of
the normalisation; here each works on the raw UTF-8 of an Arrow column with the same result:

- NFD (`decompose`): only the rows holding a character NFD changes go through Arrow's `utf8_normalize`;
- the punctuation map (`map_punctuation`): one numpy pass over the bytes instead of a regex pass per
  replacement character.
"""

from __future__ import annotations

import unicodedata

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
"""Every replacement: each source is a non-ASCII character and each target ASCII of no more UTF-8 bytes,
so no replacement creates another's source and all can be done at once."""


# ------------------------------------------------------------------------------------------ punctuation


def map_punctuation(texts: pa.Array) -> pa.Array:
    """`texts` (no nulls) with every PUNCTUATION source replaced by its target.

    How: each source's UTF-8 sequence is found at its lead byte (in valid UTF-8 a lead byte starts a
    character, so a match is a whole character), its target is written over its first bytes, the
    remaining bytes are deleted, and each string's offsets move back by the bytes deleted before them."""
    if len(texts) == 0:
        return texts
    if texts.null_count:
        raise ValueError("map_punctuation takes texts without nulls (fill them first)")
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        texts = texts.cast(pa.large_string())  # another layout (string_view): the one this reads
    offsets_buffer, data_buffer = texts.buffers()[1:3]
    if data_buffer is None:  # every text empty
        return texts
    offset_type = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, offset_type)[texts.offset : texts.offset + len(texts) + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buffer, np.uint8)[start:end]
    at, which = _sources_in(data)
    if len(at) == 0:
        return texts
    written = data.copy()
    deleted = []
    for k in np.unique(which).tolist():
        positions = at[which == k]
        target = _TARGETS[k]
        for i, byte in enumerate(target):
            written[positions + i] = byte
        deleted += [positions + i for i in range(len(target), _WIDTHS[k])]
    removed = np.sort(np.concatenate(deleted)) if deleted else np.empty(0, np.int64)
    shifted = offsets - start
    new_offsets = (shifted - np.searchsorted(removed, shifted, side="left")).astype(offset_type)
    new_data = np.delete(written, removed)
    return pa.Array.from_buffers(
        texts.type, len(texts), [None, pa.py_buffer(new_offsets), pa.py_buffer(new_data)]
    )


_SOURCES = sorted(PUNCTUATION, key=lambda c: int.from_bytes(c.encode(), "big"))
_KEYS = np.array([int.from_bytes(c.encode(), "big") for c in _SOURCES], dtype=np.uint32)
"""Each source's UTF-8 bytes as one big-endian integer, ascending (for searchsorted)."""
_TARGETS = [PUNCTUATION[c].encode() for c in _SOURCES]
_WIDTHS = [len(c.encode()) for c in _SOURCES]
_LEADS = sorted({c.encode()[0] for c in _SOURCES})


def _sources_in(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Byte positions of the PUNCTUATION sources in UTF-8 `data`, and which source (index in _SOURCES)."""
    is_lead = data == _LEADS[0]
    for lead in _LEADS[1:]:
        is_lead |= data == lead
    starts = np.flatnonzero(is_lead)
    last = len(data) - 1
    lead = data[starts].astype(np.uint32)
    two = (lead << 8) | data[np.minimum(starts + 1, last)]
    code = np.where(lead >= 0xE0, (two << 8) | data[np.minimum(starts + 2, last)], two)
    index = np.minimum(np.searchsorted(_KEYS, code), len(_KEYS) - 1)
    hit = _KEYS[index] == code
    return starts[hit], index[hit]


# ------------------------------------------------------------------------------------------------- NFD


def decompose(texts: pa.Array) -> pa.Array:
    """Unicode NFD of the texts.

    Why not one `utf8_normalize` pass: it is the normalisation's dearest pass, yet on web text most
    documents hold no character NFD changes (curly quotes, dashes, non-breaking spaces: no decomposition,
    combining class 0). A string of such characters is its own NFD (NFD is per-character decomposition,
    then reordering of characters of non-zero combining class only), so only the rows holding a character
    that decomposes or combines (`nfd_sensitive`) go through `utf8_normalize`, and the result is identical.
    """
    present = non_ascii_chars(texts)
    if present is None:
        return pc.utf8_normalize(texts, form="NFD")
    decompositions = nfd_of(present)
    sensitive = [c for c in present if nfd_sensitive(c, decompositions[c])]
    if not sensitive:
        return texts
    rows = pc.match_substring_regex(texts, f"[{re2_class(''.join(sorted(sensitive)))}]")
    if pc.all(rows).as_py():
        return pc.utf8_normalize(texts, form="NFD")
    decomposed = pc.utf8_normalize(texts.filter(rows), form="NFD")
    return pc.replace_with_mask(texts, rows, decomposed)


_NFD: dict[str, str] = {}
"""Arrow's NFD of each character met so far (the same engine as the column's pass)."""


def nfd_of(chars: set[str]) -> dict[str, str]:
    """Each character's NFD as Arrow computes it."""
    new = [c for c in chars if c not in _NFD]
    if new:
        _NFD.update(zip(new, pc.utf8_normalize(pa.array(new), form="NFD").to_pylist(), strict=True))
    return {c: _NFD[c] for c in chars}


def nfd_sensitive(char: str, decomposition: str) -> bool:
    """Whether NFD may change a string holding `char`: it decomposes, or it has a non-zero combining class
    (reordered among its neighbours). A character Python's Unicode tables do not know (newer than them)
    counts as sensitive, so a newer Arrow never makes the shortcut wrong."""
    return decomposition != char or unicodedata.combining(char) != 0 or unicodedata.category(char) == "Cn"


def non_ascii_chars(texts: pa.Array) -> set[str] | None:
    """Every non-ASCII character in the texts' UTF-8 data (a superset for a sliced array), found with
    numpy on the raw bytes; None for a layout other than (large_)string (any character may be there)."""
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        return None
    data = texts.buffers()[2]
    if data is None or data.size == 0:
        return set()
    raw = np.frombuffer(data, dtype=np.uint8)
    starts = np.flatnonzero(raw >= 0xC0)  # lead bytes of multi-byte characters
    last = len(raw) - 1
    lead, second, third, fourth = (raw[np.minimum(starts + i, last)].astype(np.uint32) for i in range(4))
    width = 2 + (lead >= 0xE0) + (lead >= 0xF0)
    codes = (lead << 24) | (second << 16)
    codes |= np.where(width >= 3, third, 0).astype(np.uint32) << 8
    codes |= np.where(width == 4, fourth, 0).astype(np.uint32)
    return {
        code.to_bytes(4, "big").rstrip(b"\0").decode("utf-8", errors="ignore")
        for code in np.unique(codes).tolist()
    }


def re2_class(chars: str) -> str:
    """The characters as the inside of an RE2 character class."""
    return "".join("\\" + c if c in "]\\^-[" else c for c in chars)

"""KenLM n-gram models, the scoring side: CCNet's text normalisation and document perplexity.

Normalisation (`normalize_for_lm`) follows CCNet's `text_normalizer.normalize` with its defaults, so the
reference model and the documents it scores see text the same way:

- lowercase;
- accents stripped: NFD, then every combining mark (Unicode category Mn) removed;
- every decimal digit (any script) becomes `0`, so numbers share statistics;
- CCNet's Unicode punctuation map (`，`->`,`, `。`->`. `, curly and angle quotes -> `"`, `’`/`´` -> `'`,
  `–`/`━`/`►` -> `-`, `—` -> ` - `, `…` -> `...`, full-width `？！（）；：％` to ASCII, ...);
- non-printing characters (controls other than newline and tab, format characters such as ZWSP) removed.

One deliberate difference: CCNet scores SentencePiece pieces; with no hub download there is no
SentencePiece model, so punctuation and symbols are split off as their own tokens instead and tokens are
whitespace-separated. Paragraphs (lines) are scored as sentences with <s> and </s>, and a document's
perplexity is CCNet's: 10 ** (-sum of log10 probabilities / (tokens + one </s> per line)).

Everything runs on a whole Arrow batch at once (RE2 kernels); only the KenLM query loop is per line. The
normalised column, its lines and the perplexities are memoised per text column (filters.batch_memo), so
the stages of one chain normalise a batch and split its lines once, and score it once per model.
Training a model (lmplz + build_binary on a corpus normalised the same way) is `filters.kenlm_training`, so
a stage that scores never imports the training code or the tool builder.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.batch_memo import memoized

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
"""CCNet's UNICODE_PUNCT map grouped by replacement; the multi-character ones are handled separately."""
PUNCTUATION_MULTI = {"。": ". ", "．": ". ", "—": " - ", "…": "..."}

NON_PRINTING = r"\x00-\x08\x0b-\x1f\x7f-\x9f\p{Cf}"
REMOVED = rf"[\p{{Mn}}{NON_PRINTING}]+"
"""Combining marks (accents, once NFD has split them off) and non-printing characters, removed in one
pass: none of them is a punctuation source or target, so removing them before the punctuation map gives
CCNet's result (which removes non-printing characters after it)."""
SPACES = r" \t\r\v\f\x{a0}\x{2000}-\x{200a}\x{3000}"
SPACE_RUN_TO_COLLAPSE = rf"[{SPACES[1:]}][{SPACES}]*| [{SPACES}]+"
"""Every run of spaces other than a lone ' ' (which would become itself): the same result as replacing
every run with ' ', at a fraction of the matches."""


def normalize_for_lm(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """CCNet normalisation of whole documents (newlines kept as paragraph breaks), plus the punctuation
    split that stands in for SentencePiece; see the module docstring."""
    texts = pc.utf8_lower(pc.fill_null(_one_array(texts), ""))
    texts, present = decompose(texts)
    texts = pc.replace_substring_regex(texts, REMOVED, "")
    texts = pc.replace_substring_regex(texts, r"\p{Nd}", "0")
    for target, sources in PUNCTUATION_TO.items():
        if present.intersection(sources):  # a pass that could change nothing is skipped
            texts = pc.replace_substring_regex(
                texts, f"[{_re2_class(sources)}]", target.replace("\\", "\\\\")
            )
    for source, target in PUNCTUATION_MULTI.items():
        if source in present:
            texts = pc.replace_substring(texts, source, target)
    texts = pc.replace_substring_regex(texts, r"([\p{P}\p{S}])", r" \1 ")
    texts = pc.replace_substring_regex(texts, SPACE_RUN_TO_COLLAPSE, " ")
    texts = pc.replace_substring_regex(texts, r" ?\n[ \n]*", "\n")
    return pc.utf8_trim(texts, " \n")


def _one_array(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(texts, pa.ChunkedArray):
        return texts.chunk(0) if texts.num_chunks == 1 else texts.combine_chunks()
    return texts


def decompose(texts: pa.Array) -> tuple[pa.Array, set[str] | AllCharacters]:
    """Unicode NFD of the texts, and (a superset of) the non-ASCII characters of the result.

    Why not one `utf8_normalize` pass: it is the normalisation's dearest pass, yet on web text most
    documents hold no character NFD changes (curly quotes, dashes, non-breaking spaces: no decomposition,
    combining class 0). A string of such characters is its own NFD (NFD is per-character decomposition,
    then reordering of characters of non-zero combining class only), so only the rows holding a character
    that decomposes or combines (`nfd_sensitive`) go through `utf8_normalize`, and the result is identical.
    """
    present = non_ascii_chars(texts)
    if isinstance(present, AllCharacters):
        return pc.utf8_normalize(texts, form="NFD"), present
    decompositions = nfd_of(present)
    sensitive = [c for c in present if nfd_sensitive(c, decompositions[c])]
    after = set().union(*map(set, decompositions.values()))
    if not sensitive:
        return texts, after
    rows = pc.match_substring_regex(texts, f"[{_re2_class(''.join(sorted(sensitive)))}]")
    if pc.all(rows).as_py():
        return pc.utf8_normalize(texts, form="NFD"), after
    decomposed = pc.utf8_normalize(texts.filter(rows), form="NFD")
    return pc.replace_with_mask(texts, rows, decomposed), after


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


def non_ascii_chars(texts: pa.Array | pa.ChunkedArray) -> set[str] | AllCharacters:
    """Every non-ASCII character in the texts' UTF-8 data (a superset for a sliced array), found with
    numpy on the raw bytes: one cheap pass that lets `normalize_for_lm` skip the punctuation passes (all
    of non-ASCII characters) that could change nothing in this batch. A layout other than (large_)string
    answers "any character", so no pass is skipped."""
    chunks = texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
    found: set[str] = set()
    for chunk in chunks:
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            return AllCharacters()
        data = chunk.buffers()[2]
        if data is None or data.size == 0:
            continue
        raw = np.frombuffer(data, dtype=np.uint8)
        starts = np.flatnonzero(raw >= 0xC0)  # lead bytes of multi-byte characters
        last = len(raw) - 1
        lead, second, third, fourth = (raw[np.minimum(starts + i, last)].astype(np.uint32) for i in range(4))
        width = 2 + (lead >= 0xE0) + (lead >= 0xF0)
        codes = (lead << 24) | (second << 16)
        codes |= np.where(width >= 3, third, 0).astype(np.uint32) << 8
        codes |= np.where(width == 4, fourth, 0).astype(np.uint32)
        for code in np.unique(codes).tolist():
            found.add(code.to_bytes(4, "big").rstrip(b"\0").decode("utf-8", errors="ignore"))
    return found


class AllCharacters:
    """Stands for "every character may be present"."""

    def __contains__(self, char: object) -> bool:
        return True

    def intersection(self, chars: str) -> set[str]:
        return set(chars)


def _re2_class(chars: str) -> str:
    return "".join("\\" + c if c in "]\\^-[" else c for c in chars)


def normalize_text(text: str) -> str:
    """One string through `normalize_for_lm` (for corpora and tests; batches should use the array form)."""
    return normalize_for_lm(pa.array([text], pa.large_string()))[0].as_py()


# ------------------------------------------------------------------------------------------- scoring


@lru_cache(maxsize=4)
def load_kenlm(path: str):
    """One loaded model per file per process (binary models are memory-mapped, so this is cheap)."""
    import kenlm

    return kenlm.Model(path)


def document_perplexities(model, normalized: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """CCNet document perplexity per normalised text; NaN for a text with no tokens.

    Python only maps `model.score` (with its <s> and </s> defaults) over the non-empty lines
    (`scoring_lines`). `np.bincount` adds each document's line scores in line order from 0.0, the same
    additions as a per-document loop, so the result is bit-identical to it."""
    return lines_perplexities(model, scoring_lines(normalized))


def lines_perplexities(model, lines: ScoringLines) -> np.ndarray:
    """`document_perplexities` of lines already split."""
    log10 = np.fromiter(map(model.score, lines.utf8), dtype=np.float64, count=len(lines.utf8))
    total = np.bincount(lines.parents, weights=log10, minlength=lines.documents)
    length = np.bincount(lines.parents, weights=lines.tokens, minlength=lines.documents)
    exponents = (-total / np.maximum(length, 1)).tolist()
    powers = np.fromiter((10.0**e for e in exponents), dtype=np.float64, count=len(exponents))  # libm's pow,
    return np.where(length > 0, powers, np.nan)  # as the loop had: numpy's SIMD pow can differ by an ulp


@dataclass(frozen=True)
class ScoringLines:
    """The non-empty lines of a normalised column, as KenLM scores them."""

    utf8: list[bytes]
    """Each line's UTF-8 bytes: kenlm's `score` takes bytes as they are (a str it encodes on every call)."""
    parents: np.ndarray
    """The document of each line."""
    tokens: np.ndarray
    """Each line's tokens + one </s>."""
    documents: int


def scoring_lines(normalized: pa.Array | pa.ChunkedArray) -> ScoringLines:
    """Lines split, filtered and token-counted by Arrow kernels, once per column for every model."""
    normalized = _one_array(normalized)
    lines = pc.split_pattern(pc.fill_null(normalized, ""), "\n")
    flat, parents = pc.list_flatten(lines), pc.list_parent_indices(lines)
    keep = pc.greater(pc.binary_length(flat), 0)
    flat, parents = flat.filter(keep), parents.filter(keep).to_numpy()
    tokens = pc.add(pc.count_substring(flat, " "), 2).to_numpy()
    binary = pa.large_binary() if pa.types.is_large_string(flat.type) else pa.binary()
    return ScoringLines(flat.view(binary).to_pylist(), parents, tokens, len(normalized))


def lm_normalized(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`normalize_for_lm` of a batch's texts, computed once per text column (filters.batch_memo), since
    the perplexity, harmful_ppl, toxicity and quality stages all start from it."""
    return memoized("normalize_for_lm", texts, (), lambda: normalize_for_lm(texts))


def perplexities(model, texts: pa.Array | pa.ChunkedArray | list[str]) -> np.ndarray:
    """Raw texts -> normalised -> document perplexities; an Arrow column already scored by this very
    model (the perplexity stage before quality's ensemble) is not scored again (filters.batch_memo)."""
    if isinstance(texts, list):
        return document_perplexities(model, normalize_for_lm(pa.array(texts, pa.large_string())))
    return memoized("perplexities", texts, (model,), lambda: _score_column(model, texts))


def _score_column(model, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column's lines are split once for every model (perplexity and harmful_ppl share them)."""
    normalized = lm_normalized(texts)
    return lines_perplexities(
        model, memoized("scoring_lines", normalized, (), lambda: scoring_lines(normalized))
    )

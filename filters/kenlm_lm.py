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

Everything runs on a whole Arrow batch at once (RE2 kernels); only the KenLM query loop is per line.
Training a model (lmplz + build_binary on a corpus normalised the same way) is `filters.kenlm_training`, so
a stage that scores never imports the training code or the tool builder.
"""

from __future__ import annotations

from collections.abc import Iterable
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
"""CCNet's UNICODE_PUNCT map grouped by replacement; the multi-character ones are handled separately."""
PUNCTUATION_MULTI = {"。": ". ", "．": ". ", "—": " - ", "…": "..."}

NON_PRINTING = r"[\x00-\x08\x0b-\x1f\x7f-\x9f\p{Cf}]"


def normalize_for_lm(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """CCNet normalisation of whole documents (newlines kept as paragraph breaks), plus the punctuation
    split that stands in for SentencePiece; see the module docstring."""
    texts = pc.utf8_lower(pc.fill_null(texts, ""))
    texts = pc.utf8_normalize(texts, form="NFD")
    texts = pc.replace_substring_regex(texts, r"\p{Mn}+", "")
    texts = pc.replace_substring_regex(texts, r"\p{Nd}", "0")
    for target, sources in PUNCTUATION_TO.items():
        texts = pc.replace_substring_regex(texts, f"[{_re2_class(sources)}]", target.replace("\\", "\\\\"))
    for source, target in PUNCTUATION_MULTI.items():
        texts = pc.replace_substring(texts, source, target)
    texts = pc.replace_substring_regex(texts, NON_PRINTING, "")
    texts = pc.replace_substring_regex(texts, r"([\p{P}\p{S}])", r" \1 ")
    texts = pc.replace_substring_regex(texts, r"[ \t\r\v\f\x{a0}\x{2000}-\x{200a}\x{3000}]+", " ")
    texts = pc.replace_substring_regex(texts, r" ?\n[ \n]*", "\n")
    return pc.utf8_trim(texts, " \n")


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


def document_perplexities(model, normalized: Iterable[str | None]) -> np.ndarray:
    """CCNet document perplexity per normalised text; NaN for a text with no tokens."""
    score = model.score
    out = []
    for text in normalized:
        log10 = 0.0
        length = 0
        for line in (text or "").split("\n"):
            if line:
                log10 += score(line, bos=True, eos=True)
                length += line.count(" ") + 2  # tokens + </s>
        out.append(10.0 ** (-log10 / length) if length else np.nan)
    return np.asarray(out, dtype=np.float64)


def perplexities(model, texts: pa.Array | pa.ChunkedArray | list[str]) -> np.ndarray:
    """Raw texts -> normalised -> document perplexities."""
    array = pa.array(texts, pa.large_string()) if isinstance(texts, list) else texts
    return document_perplexities(model, normalize_for_lm(array).to_pylist())

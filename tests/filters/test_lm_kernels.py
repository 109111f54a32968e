"""The compiled text passes (`filters.lm_normalize_kernel`, `filters.word_list_kernel`) give exactly
what the Arrow passes they replaced give.

Tolerance: none. The KenLM normalisation equals `every_pass` (plain Arrow passes over every row, the
reference of tests/filters/test_annotate_reuse.py) and the word-list counts equal the Arrow version kept
here (`arrow_word_rate`), on every Unicode code point in several contexts, real web text, the UDHR in
every language of ../shared/data/langid/udhr2.zip, real toxic and clean text, and edge cases, in every
Arrow layout a stage may be handed.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from bench.rule_chain import web_documents
from filters import corpora
from filters.kenlm_lm import normalize_for_lm
from filters.lm_normalize_kernel import normalize_lowered
from filters.lm_unicode import PUNCTUATION_MULTI, PUNCTUATION_TO, WORD_TRIM
from filters.toxicity import profanity_rate, profanity_words
from filters.word_list_kernel import CANDIDATES, WordSet, word_list_counts
from tests.filters.test_annotate_reuse import every_pass

EVERY_SOURCE = "".join(PUNCTUATION_TO.values()) + "".join(PUNCTUATION_MULTI)
EDGE_CASES = [
    "",
    None,
    "!?.,;:",
    "...",
    "  \n\n \t ",
    "\n",
    "a\r\nb\r\n\r\n c\r",
    "\u00a0\u3000\u2003 x \u3000\u00a0\u3000y\u00a0",
    "Caf\u00e9 e\u0301\u0316 q\u0307\u0323 \u1e9b\u0323 \u00c5ngstr\u00f6m",  # combining marks, out of order
    "\u0661\u0662\u0663 \u06f4 \u0966\u096f \uff11\uff12 \U0001d7ce\u0e53",  # digits of other scripts
    "\U0001f600\U0001f44d\U0001f3fd \U0001f1eb\U0001f1f7 \U00010348 \u2603 \U0001f9d1\u200d\U0001f4bb",
    EVERY_SOURCE,
    f"a{EVERY_SOURCE}b{EVERY_SOURCE[::-1]}",
    "\u3002\u2014x\u00bb \u2329x\u232a",
    "x\U0001d165\u1b44y \u1b13\u1b44\u1b34",  # NFD reorders characters that survive removal
    "\u05c8 \u1acf\u0301",  # combining classes newer than RE2's Mn
    "\u200b\u200d\ufeff\u00ad",  # format characters only
    "\x00\x07\x1f\x7f\x85\x9f",  # controls only
    "tab\tand\u2028line\u2029sep\u0085end",
    "\ud55c\uad6d\uc5b4 " * 2000,  # Hangul decomposes to 2-3 jamo: the output outgrows its first buffer
    "a!" * 5000,
    "You are a STUPID F*cking idiot, (shit)! \u201cAss\u201d ass... \u00a0shit\u3000fuck\u2028damn",
    "\u212aill \u0130diot \u00dfhit \u017fhit",  # letters whose lowercase is (or is not) ASCII
]


def layouts(texts: list[str | None]) -> list[pa.Array | pa.ChunkedArray]:
    """The same texts as large_string, string, a slice, and a chunked column."""
    column = pa.array(texts, pa.large_string())
    return [
        column,
        column.cast(pa.string()),
        column.slice(1, max(0, len(texts) - 2)),
        pa.chunked_array([column.slice(0, len(texts) // 2), column.slice(len(texts) // 2)]),
        pa.chunked_array([column.cast(pa.string())]),
    ]


def every_code_point(template: str, per_text: int = 512) -> list[str]:
    """Every Unicode scalar value put in `template` ("{c}" marks where), many per text."""
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    return [
        "".join(template.format(c=c) for c in chars[i : i + per_text]) for i in range(0, len(chars), per_text)
    ]


@pytest.fixture(scope="module")
def web_and_udhr(shared: Path) -> list[str]:
    """Real web documents, and the UDHR in every language of the archive (many scripts)."""
    texts = web_documents(shared)[:3000]
    with zipfile.ZipFile(shared / "langid" / "udhr2.zip") as archive:
        texts += [archive.read(i).decode("utf-8") for i in archive.infolist() if not i.is_dir()]
    return texts


# ------------------------------------------------------------------------------------- normalisation


def test_normalisation_of_every_code_point_equals_every_pass() -> None:
    column = pa.array(every_code_point("{c}b{c}{c}\u0301 {c}.\n{c}"))
    assert normalize_for_lm(column).to_pylist() == every_pass(column).to_pylist()


def test_normalisation_of_web_and_udhr_text_equals_every_pass(web_and_udhr: list[str]) -> None:
    column = pa.array(web_and_udhr, pa.large_string())
    assert normalize_for_lm(column).to_pylist() == every_pass(column).to_pylist()


def test_normalisation_of_edge_cases_in_every_layout_equals_every_pass() -> None:
    for texts in layouts(EDGE_CASES):
        got = normalize_for_lm(texts)
        assert got.to_pylist() == every_pass(texts).to_pylist()
        assert got.null_count == 0 and len(got) == len(texts)
        assert got.type == (pa.string() if texts.type == pa.string() else pa.large_string())


def test_rows_where_nfd_reorders_survivors_come_out_reordered() -> None:
    texts = pa.array(["x\U0001d165\u1b44y", "plain", "x\u1b44\U0001d165y"])
    assert normalize_lowered(texts).to_pylist() == ["x\u1b44\U0001d165y", "plain", "x\u1b44\U0001d165y"]


# ------------------------------------------------------------------------------------------ word list


def arrow_word_rate(texts: pa.Array | pa.ChunkedArray, words: list[str]) -> np.ndarray:
    """The Arrow version `profanity_rate` replaced (with the word list as a parameter), the reference."""
    tokens = pc.utf8_split_whitespace(pc.utf8_lower(pc.fill_null(texts, "")))
    if isinstance(tokens, pa.ChunkedArray):
        tokens = tokens.combine_chunks()
    flat = pc.utf8_trim(pc.list_flatten(tokens), WORD_TRIM)
    hits = pc.is_in(flat, pa.array(sorted(words), flat.type)).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(tokens).to_numpy()
    counts = pc.list_value_length(tokens).to_numpy().astype(np.float64)
    bad = np.bincount(parents[hits], minlength=len(tokens)).astype(np.float64)
    return np.divide(bad, counts, out=np.zeros(len(tokens)), where=counts > 0)


def compiled_word_rate(texts: pa.Array | pa.ChunkedArray, words: list[str]) -> np.ndarray:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    hits, tokens = word_list_counts(pc.utf8_lower(pc.fill_null(texts, "")), WordSet.of(words), WORD_TRIM)
    counts = tokens.astype(np.float64)
    return np.divide(hits.astype(np.float64), counts, out=np.zeros(len(counts)), where=counts > 0)


def test_profanity_rate_equals_arrow_on_toxic_and_clean_text(shared: Path, web_and_udhr: list[str]) -> None:
    texts = [text for _, text in corpora.fourchan_threads(shared / "toxicity")]
    texts += [text for text, _ in corpora.davidson_examples(shared / "toxicity")][:5000]
    texts += [text for _, text in corpora.news_documents()][:500] + web_and_udhr
    words = sorted(profanity_words())
    for column in layouts(texts):
        expected = arrow_word_rate(column, words)
        assert np.array_equal(profanity_rate(column), expected)
    assert (expected > 0).sum() > 1000  # the toxic threads and tweets do hit the list
    tokens = pc.list_value_length(pc.utf8_split_whitespace(pa.array(texts))).to_numpy()
    assert tokens.max() > CANDIDATES  # rows whose token bounds fill the scan's buffer more than once


def test_word_list_counts_equal_arrow_on_every_code_point_and_edge_cases() -> None:
    """Every code point beside a word, inside one and alone shows it splits, trims and lowercases as
    Arrow does; the extra words (empty, non-ASCII, with trimmed or split characters) that the lookup is
    by exact bytes."""
    texts = every_code_point("shit{c} {c}fuck{c} a{c}b {c} ") + EDGE_CASES
    words = [*profanity_words(), "", "na\u00efve", "\u65e5\u672c", "a.b", "x!", "\u212aill", "two words"]
    for column in layouts(texts):
        for word_list in (sorted(profanity_words()), words, []):
            assert np.array_equal(compiled_word_rate(column, word_list), arrow_word_rate(column, word_list))
    # stupid, (shit)!, ass..., shit, fuck, damn of 12 (curly quotes stay); the Kelvin sign lowercases to k
    assert profanity_rate(pa.array(EDGE_CASES[-2:])).tolist() == [6 / 12, 1 / 4]
    assert profanity_rate(pa.array(["shit", "shit ", "shit  ", "  ", ""])).tolist() == [1, 1 / 2, 1 / 3, 0, 0]

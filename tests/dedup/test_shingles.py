"""Shingling: the vectorised byte-level implementation equals the slow per-character definition."""

from __future__ import annotations

import random

import numpy as np
import pytest

from curate.dedup import normalize_words, reference_shingle_hashes, shingle_hashes
from curate.dedup.shingles import iter_shingle_batches, word_hash
from curate.textsources import stdlib_sources

TRICKY = [
    "",
    "   ",
    "Hello, World!",
    "don't stop-believing_now",
    "ÉTÉ Straße ΣΊΣΥΦΟΣ İstanbul",
    "K Kelvin Å ẞ",  # lowercase would change the UTF-8 length: kept as is
    "e\u0301te\u0301 café",  # combining marks belong to the word
    "a\u00a0b\u2003c\u200bd\u00ade",  # NBSP, em space, zero-width space, soft hyphen separate
    "emoji😀inside 𐐀𐐨 𝐀𝐁 数据 データ",
    "tab\tnew\nline\r\nend",
    "x" * 200 + " " + "é" * 150 + " y",  # words longer than the vectorised rounds
    "12 345,678.9 v2.0",
]


def test_normalize_words_definition() -> None:
    assert normalize_words("Hello, World!") == ["hello", "world"]
    assert normalize_words("don't stop-believing_now") == ["don", "t", "stop", "believing", "now"]
    assert normalize_words("ÉTÉ Straße") == ["été", "straße"]
    assert normalize_words("\u212a") == ["\u212a"]  # KELVIN SIGN keeps its 3-byte form
    assert normalize_words("e\u0301te\u0301") == ["e\u0301te\u0301"]
    assert normalize_words("a\u00a0b😀c") == ["a", "b", "c"]
    assert normalize_words("v2.0 1,000") == ["v2", "0", "1", "000"]


@pytest.mark.parametrize("seed", [0, 5])
def test_vectorised_equals_reference_on_tricky_text(seed: int) -> None:
    batch = shingle_hashes(TRICKY, seed=seed)
    for i, text in enumerate(TRICKY):
        assert batch.doc(i).tolist() == reference_shingle_hashes(text, seed=seed), text


@pytest.mark.parametrize("ngram", [1, 3, 5])
def test_vectorised_equals_reference_on_real_files(ngram: int) -> None:
    docs = [text for _, text in stdlib_sources(limit=25)]
    batch = shingle_hashes(docs, ngram=ngram)
    for i, text in enumerate(docs):
        assert batch.doc(i).tolist() == reference_shingle_hashes(text, ngram=ngram)


def test_vectorised_equals_reference_on_random_unicode() -> None:
    rng = random.Random(0)
    alphabet = "aAzZ09 ,.!-'\n\tÉéßẞΣσςİıＡ𐐀😀\u00a0\u00ad\u0301’“—KÅ数"
    docs = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(300)]
    batch = shingle_hashes(docs)
    for i, text in enumerate(docs):
        assert batch.doc(i).tolist() == reference_shingle_hashes(text), repr(text)


def test_sub_batches_do_not_change_hashes() -> None:
    docs = [text for _, text in stdlib_sources(limit=10)]
    whole = shingle_hashes(docs)
    parts = list(iter_shingle_batches(docs, batch_bytes=5_000))
    assert len(parts) > 1
    np.testing.assert_array_equal(np.concatenate([p.hashes for p in parts]), whole.hashes)


def test_word_hash_is_seeded_and_stable() -> None:
    assert word_hash("hello") == 4296386428272944997
    assert word_hash("hello", seed=1) != word_hash("hello")
    assert word_hash("hello") == word_hash(b"hello")


def test_ngram_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ngram"):
        shingle_hashes(["a b"], ngram=0)


def test_malformed_utf8_from_unvalidated_arrow_data_does_not_crash() -> None:
    """Parquet readers may hand over string columns whose bytes were never validated."""
    import pyarrow as pa

    raw = pa.array([b"one two \xf8\x88\x80\x80 three four five six", b"\xff\xfe", b"end\xc3"], pa.binary())
    texts = pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())
    batch = shingle_hashes(texts)
    assert np.diff(batch.offsets).tolist()[0] >= 2  # garbage bytes become some word or a separator
    np.testing.assert_array_equal(shingle_hashes(texts).hashes, batch.hashes)  # ...deterministically

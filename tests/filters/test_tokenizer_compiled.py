"""The compiled tokenizer (`filters.rules.tokenizer`) against the numpy one it replaced
(tests/filters/tokens_reference.py): every token's start, hash, length and class bits, every word run,
and every output of the `heuristics` stage, identical on real web text, multilingual text (UDHR) and
hand-made edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import filters.rules.words as words_module
import tests.filters.tokens_reference as reference
from bench.rule_chain import web_documents
from curate.textwindows import whitespace_windows
from filters.heuristics import HeuristicRules, HeuristicsParams
from filters.rules.badwords import SubstringBadWords
from filters.rules.tokenizer import substring_hashes
from filters.rules.words import HashSet, TokenTable, distinct_stop_words, hash_strings
from tests.filters.heuristics_reference import assert_same_result
from tests.filters.test_heuristics_languages import UNSPACED_UDHR, udhr_parts
from tests.filters.test_heuristics_vectorised import EDGE_CASES

TOKENIZER_CASES = [
    "",
    " ",
    " \t\n\u3000\u00a0 ",
    "x" * 200_000,
    "a" * 120_000 + "." + "b" * 90_000 + "'s",
    "http://example.com/a-b?c=d.e, https://x.org:80/p e-mail me@x.com 127.0.0.1:80 a:b a/b",
    "don't I'm we'll they're you've she'd CAN'T Won'T 'll 's 're ' s it' s n't 'S",
    'Mr. Mrs. Jan. a.m. e.g. U.S. U.S.A. etc. (Mr.) "Dr." mr. Xx. ...Mr. abc.Def x.y',
    "20cm 5pm 2GB 3.5% $100 100$ 5+ 1+2 3-4 2^8 4*5 a--b a---b 1-a --a a-- — – ~ x~y",
    'type="image" |Microsoft --- ... …  .. .a. a.. (a) [b] {c} <d> «e» „f“ ¿g? ¡h! #i @j',
    "日本語の文です。これは二番目の文です！ＡＢＣ，テスト ไทย ภาษา 中文1948年，句子",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀 a😀b 😀. (😀) 20😀 𠀀𠀁 \U0001f600\U0001f3fb",
    "lone \ud800 surrogate \udfff. a\ud83db",
    "é́ combining ñ marks a\u0301b 5\u0301cm \u0301x",
    "٣٤٥ عربي، نص؛ ٪ هنا۔ हिन्दी। ‘quoted’ ’s “x” ´y´",
]


@pytest.fixture(scope="module")
def web_texts(shared: Path) -> list[str]:
    texts = web_documents(shared)
    return texts


def assert_same_windows(texts: list[str], split_unspaced: bool) -> None:
    """Every window of the joined texts gives the same tokens and word runs in both tokenizers."""
    text = "\n".join(texts)
    doc_starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.array([len(t) for t in texts], dtype=np.int64) + 1, out=doc_starts[1:])
    for a, b in whitespace_windows(text, size=1 << 16):
        got = words_module._window_tokens(text[a:b], a, doc_starts, split_unspaced, True)
        expected = reference._window_tokens(text[a:b], a, doc_starts, split_unspaced, True)
        names = ["before", "hashes", "lengths", "letter", "word"]
        for name, mine, theirs in zip(names, got[:5], expected[:5], strict=True):
            assert mine.dtype == theirs.dtype, name
            assert np.array_equal(mine, theirs), f"{name} differs in window {a}:{b}"
        for mine, theirs in zip(got[5], expected[5], strict=True):
            assert np.array_equal(mine, theirs), f"word runs differ in window {a}:{b}"
        assert all(
            np.array_equal(mine, theirs)
            for mine, theirs in zip(
                words_module._window_word_runs(text[a:b], a, doc_starts),
                reference._window_word_runs(text[a:b], a, doc_starts),
                strict=True,
            )
        )


@pytest.mark.parametrize("split_unspaced", [False, True])
def test_edge_cases_match_the_numpy_tokenizer(split_unspaced):
    assert_same_windows(TOKENIZER_CASES + EDGE_CASES, split_unspaced)
    for case in TOKENIZER_CASES:
        assert_same_windows([case], split_unspaced)


@pytest.mark.parametrize("split_unspaced", [False, True])
def test_real_web_text_matches_the_numpy_tokenizer(web_texts, split_unspaced):
    assert len(web_texts) >= 500
    assert_same_windows(web_texts, split_unspaced)


def test_multilingual_text_matches_the_numpy_tokenizer(shared):
    scripts = ["arb", "hin", "ell_polytonic", "kor", "heb", "amh"]
    for stem in ["deu", "fra", "rus", "spa", "eng", *UNSPACED_UDHR, *scripts]:
        parts = udhr_parts(shared, stem, 3)
        assert_same_windows(parts, False)
        assert_same_windows(parts, True)


def test_hashes_are_the_numpy_segment_hashes():
    strings = ["", "a", "don't", "日本", "😀x", "x" * 1000, "\ud800"]
    code_points = words_module._code_points("".join(strings))
    starts = np.r_[0, np.cumsum([len(s) for s in strings])[:-1]].astype(np.int64)
    assert np.array_equal(hash_strings(strings), reference._segment_hashes(code_points, starts))
    text = "abc日本語😀d"
    points = words_module._code_points(text)
    for length in (1, 2, 3):
        count = len(text) - length + 1
        expected = hash_strings([text[k : k + length] for k in range(count)])
        assert np.array_equal(substring_hashes(points, length, count), expected)


@pytest.mark.parametrize("size", [0, 1, 5, 300, 5000])
def test_hash_set_finds_exactly_its_members(size):
    rng = np.random.default_rng(size)
    members = rng.integers(0, 2**64, size=size, dtype=np.uint64, endpoint=False)
    others = rng.integers(0, 2**64, size=20000, dtype=np.uint64, endpoint=False)
    values = rng.permutation(np.concatenate([members, others, members[::3]]))
    hash_set = HashSet(members)
    positions, which = hash_set.hits(values)
    assert np.array_equal(positions, np.flatnonzero(np.isin(values, members)))
    assert np.array_equal(hash_set.sorted[which], values[positions])


def test_distinct_stop_words_count_each_word_once_per_document():
    texts = ["the cat and the dog", "", "The THE the", "nothing here", "a the a and"]
    stop_words = HashSet(hash_strings(["the", "and", "a"]))
    counts = distinct_stop_words(TokenTable.from_texts(texts), stop_words)
    assert counts.tolist() == [2, 0, 1, 0, 3]
    assert distinct_stop_words(TokenTable.from_texts(texts), stop_words, 2, 5).tolist() == [1, 0, 3]


def test_substring_bad_words_find_every_occurrence():
    texts = ["a日本語b日本", "", "本日本日本"]
    counts = SubstringBadWords(["日本", "語b", "zz"]).count(texts, TokenTable.from_texts(texts))
    assert counts.tolist() == [3, 0, 2]


@pytest.mark.parametrize("mode", ["drop", "annotate"])
def test_stage_outputs_are_identical_with_the_numpy_tokenizer(web_texts, shared, monkeypatch, mode):
    """The whole stage, with a `lang` column mixing languages: every column, drop reason and stat."""
    udhr = udhr_parts(shared, "fra", 4) + udhr_parts(shared, "jpn", 4) + udhr_parts(shared, "tha", 4)
    arrow_cases = [case for case in TOKENIZER_CASES if "lone" not in case]  # Arrow holds no surrogates
    texts = web_texts[:600] + arrow_cases + EDGE_CASES + udhr
    langs = ["en"] * (len(texts) - len(udhr)) + ["fr"] * 4 + ["ja"] * 4 + ["th"] * 4
    batch = pa.table({"text": pa.array(texts), "lang": pa.array(langs, pa.string())})
    got = HeuristicRules(HeuristicsParams(mode=mode)).process(batch)
    monkeypatch.setattr(words_module, "_window_tokens", reference._window_tokens)
    monkeypatch.setattr(words_module, "_window_word_runs", reference._window_word_runs)
    expected = HeuristicRules(HeuristicsParams(mode=mode)).process(batch)
    assert_same_result(got, expected)

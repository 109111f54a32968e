"""Exact token counts: the fast path (`PieceCounter`, pre-tokens found in numpy, each distinct one counted
once) must give, text for text, what the tokenizer itself gives (`len(encode(text))`), and sidecars must
keep caching them.

Real documents come from ../shared/data (books, web, Wikipedia markup, maths, forum posts, the Universal
Declaration of Human Rights in hundreds of languages and scripts), cut at run time; edge cases are built
here: every kind of whitespace run, contractions, a literal `<|endoftext|>`, the piece separator itself.
"""

from __future__ import annotations

import bz2
import gzip
import itertools
import os
import random
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mixtest_corpus import MixCorpus, build_mix_corpus
from tokenizers import Tokenizer, normalizers

from curate.textsources import shared_data_dir
from mixers.corpus import open_corpora
from mixers.spec import TokenizerSpec
from mixers.tokens import (
    SPACES,
    PieceCounter,
    count_parts,
    count_tokens,
    make_counter,
    missing_counts,
    sidecar_path,
    text_counter,
)
from trainer.tokenizer import load_tokenizer, train_tokenizer

DOC_CHARS = 4000
FILE_CHARS = 12_000  # from each shared file (each language of a zip archive: ZIP_MEMBER_CHARS)
ZIP_MEMBER_CHARS = 2000


def file_texts(path: Path) -> Iterator[str]:
    """The decoded text of a shared file (each member of a zip), compressed or not."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                yield archive.read(name)[: ZIP_MEMBER_CHARS * 4].decode("utf-8", "replace")[:ZIP_MEMBER_CHARS]
        return
    opener: Any = {".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix, open)
    with opener(path, "rb") as handle:
        yield handle.read(FILE_CHARS * 4).decode("utf-8", "replace")[:FILE_CHARS]


def shared_documents() -> list[str]:
    shared = shared_data_dir()
    if shared is None:
        pytest.skip("needs ../shared/data (or $CURATE_SHARED_DATA) for real documents")
    documents = []
    for path in sorted(p for p in shared.rglob("*") if p.is_file()):
        for text in file_texts(path):
            documents += [text[i : i + DOC_CHARS] for i in range(0, len(text), DOC_CHARS)]
    return documents


@pytest.fixture(scope="module")
def documents() -> list[str]:
    return shared_documents()


@pytest.fixture(scope="module")
def tokenizer(documents: list[str], tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    """A byte-level BPE as the trainer builds it, trained on a spread of the documents."""
    sample = documents[::7]
    path = train_tokenizer(sample, 2048, cache_dir=tmp_path_factory.mktemp("tok"), max_chars=1_000_000)
    tokenizer = load_tokenizer(path)
    tokenizer.encode_special_tokens = True  # as trainer.tokenizer.encode_documents encodes
    return tokenizer


def assert_same_counts(tokenizer: Tokenizer, texts: list[str]) -> None:
    fast = PieceCounter(tokenizer).count(pa.array(texts))
    simple = np.array([len(tokenizer.encode(text, add_special_tokens=False).ids) for text in texts])
    differ = np.flatnonzero(fast != simple)
    assert not len(differ), [(texts[i][:60], fast[i], simple[i]) for i in differ[:5]]


def test_the_fast_path_applies_to_the_trainers_tokenizer(tokenizer: Tokenizer) -> None:
    assert PieceCounter.fits(tokenizer)


def test_counts_equal_the_tokenizer_on_real_documents(tokenizer: Tokenizer, documents: list[str]) -> None:
    assert sum(map(len, documents)) > 1_000_000 and len(documents) > 400
    assert_same_counts(tokenizer, documents)


def whitespace_runs(count: int) -> list[str]:
    """Random mixes of every kind of whitespace with words, numbers, punctuation and contractions."""
    pieces = [
        *SPACES,
        " ",
        " ",
        "\r\n",
        "a",
        "Ab",
        "é",
        "日本",
        "12",
        "٣",
        ".",
        "?!",
        "'s",
        "'ll",
        "'x",
        "’s",
    ]
    rng = random.Random(0)
    return ["".join(rng.choices(pieces, k=rng.randint(1, 14))) for _ in range(count)]


FORMS = ("a{0}b", "1{0}2", "  {0}x", "{0}{0} y", "x {0}")  # each code point as letter, number, after spaces


def test_counts_equal_the_tokenizer_on_edge_cases(tokenizer: Tokenizer) -> None:
    rng = random.Random(1)
    code_points = [chr(c) for c in itertools.chain(range(0x3000), rng.sample(range(0x3000, 0x110000), 4_000))]
    unicode = [form.format(c) for c in code_points if not 0xD800 <= ord(c) < 0xE000 for form in FORMS]
    special = ["", "<|endoftext|>", "a <|endoftext|>\n\nb", "x\uffffy  z", "\uffff", "  \n", "tail \t\n "]
    assert_same_counts(tokenizer, whitespace_runs(5_000) + unicode + special)


def test_one_counter_counts_batches_slices_and_text_ends_alike(
    tokenizer: Tokenizer, documents: list[str]
) -> None:
    """Pre-tokens never cross texts (an apostrophe ending one text is no contraction with the next's
    letters); an ASCII-only batch takes the path without code points; pieces learnt in one batch are
    reused in the next; an Arrow slice or chunked column counts like the plain list."""
    ascii_only = [text for text in whitespace_runs(2_000) if text.isascii()]
    boundaries = ["it'", "s", "a", "'s", "'", "ll", "x '", "re", " ", "'d", "\u3000", "'t", "b\u3000\u3000"]
    texts = ascii_only + boundaries + documents[:20]
    expected = [len(tokenizer.encode(text, add_special_tokens=False).ids) for text in texts]
    counter = PieceCounter(tokenizer)
    assert counter.count(pa.array(ascii_only)).tolist() == expected[: len(ascii_only)]
    assert counter.count(pa.array(texts)).tolist() == expected
    assert counter.count(pa.array(texts)).tolist() == expected  # every piece known now
    assert counter.count(pa.array(texts).slice(7)).tolist() == expected[7:]
    assert counter.count(pa.chunked_array([texts[:9], texts[9:]])).tolist() == expected


def test_null_texts_count_nothing_but_the_end_of_text(tokenizer: Tokenizer) -> None:
    count = text_counter(tokenizer)
    assert count(pa.array([None, "", "a"])).tolist() == [1, 1, 1 + len(tokenizer.encode("a").ids)]


def test_other_tokenizers_use_the_tokenizer_itself(tokenizer: Tokenizer, documents: list[str]) -> None:
    lowercased = Tokenizer.from_str(tokenizer.to_str())
    lowercased.normalizer = normalizers.Lowercase()
    assert not PieceCounter.fits(lowercased)
    texts = documents[:50]
    counted = text_counter(lowercased)(pa.array(texts))
    assert counted.tolist() == (count_tokens(lowercased, texts) + 1).tolist()
    assert counted.tolist() != text_counter(tokenizer)(pa.array(texts)).tolist()


@pytest.fixture(scope="module")
def mix_corpus(tmp_path_factory: pytest.TempPathFactory) -> MixCorpus:
    return build_mix_corpus(tmp_path_factory.mktemp("counts"))


def test_sidecars_hold_the_exact_counts_and_are_reused(mix_corpus: MixCorpus) -> None:
    corpora = open_corpora([str(mix_corpus.out)])
    counter = make_counter(TokenizerSpec(path=str(mix_corpus.tokenizer)))
    assert missing_counts(corpora, corpora.parts, counter) == corpora.parts
    count_parts(corpora, corpora.parts, counter)
    assert missing_counts(corpora, corpora.parts, counter) == []
    reference = load_tokenizer(mix_corpus.tokenizer)
    reference.encode_special_tokens = True
    for part in corpora.parts[:3]:
        sidecar = pq.read_table(sidecar_path(part, corpora.roots[part.corpus], counter))
        texts = pq.read_table(part.path, columns=["id", "text"])
        assert sidecar["id"].to_pylist() == texts["id"].to_pylist()
        expected = [
            len(reference.encode(t or "", add_special_tokens=False).ids) + 1
            for t in texts["text"].to_pylist()
        ]
        assert sidecar["n_tokens"].to_pylist() == expected
    touched = corpora.parts[0]
    os.utime(touched.path, ns=(1, 1))  # the part changed since it was counted: only it is recounted
    assert missing_counts(corpora, corpora.parts, counter) == [touched]

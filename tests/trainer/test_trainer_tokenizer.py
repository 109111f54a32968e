"""Byte-level BPE: exact round trip on real text, end-of-text handling, and the hash-keyed cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.tokenizer import (
    EOT,
    encode_documents,
    load_tokenizer,
    resolve_tokenizer_path,
    sample_hash,
    train_tokenizer,
)


def test_round_trip_is_exact_on_prose_code_and_unicode(corpus, tokenizer_path):
    tokenizer = load_tokenizer(tokenizer_path)
    texts = [text for text, _ in corpus] + ["naïve café — 日本語 😀\ttabs\r\n  spaces  ", "a <|endoftext|> b"]
    for (ids, n_bytes), text in zip(encode_documents(tokenizer, texts), texts, strict=True):
        assert ids[-1] == tokenizer.token_to_id(EOT)
        assert EOT not in tokenizer.decode(ids[:-1].tolist(), skip_special_tokens=False) or EOT in text
        assert tokenizer.decode(ids.tolist()) == text
        assert n_bytes == len(text.encode("utf-8"))


def test_literal_end_of_text_in_a_document_is_not_a_boundary(tokenizer_path):
    tokenizer = load_tokenizer(tokenizer_path)
    [(ids, _)] = list(encode_documents(tokenizer, ["before <|endoftext|> after"]))
    assert list(ids).count(tokenizer.token_to_id(EOT)) == 1  # only the appended one


def test_bpe_compresses_real_text(corpus, tokenizer_path):
    tokenizer = load_tokenizer(tokenizer_path)
    assert tokenizer.get_vocab_size() == 512
    text = corpus[0][0]
    assert len(tokenizer.encode(text).ids) < 0.6 * len(text.encode("utf-8"))  # a byte per token without BPE


def test_cache_returns_the_same_file_without_retraining(corpus, tmp_path):
    texts = [text for text, _ in corpus[:30]]
    first = train_tokenizer(texts, 300, tmp_path)
    stamp = first.stat().st_mtime_ns
    again = train_tokenizer(iter(texts), 300, tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp
    assert first.parent.name == sample_hash(texts, 300)
    assert train_tokenizer(texts, 320, tmp_path) != first  # vocabulary size is part of the key
    assert train_tokenizer(texts[1:], 300, tmp_path) != first  # so is the sample
    assert len(list(tmp_path.iterdir())) == 3


def test_sample_is_bounded_by_characters(corpus, tmp_path):
    texts = [text for text, _ in corpus]
    bounded = train_tokenizer(texts, 300, tmp_path, max_chars=5000)
    assert bounded.parent.name == sample_hash([texts[0][:5000]], 300)


def test_named_tokenizer_loads_from_file_or_folder(tokenizer_path):
    assert resolve_tokenizer_path(tokenizer_path.parent) == tokenizer_path
    assert load_tokenizer(tokenizer_path.parent).get_vocab_size() == 512
    with pytest.raises(FileNotFoundError, match="no such tokenizer"):
        load_tokenizer(Path("/nonexistent/tokenizer.json"))


def test_too_small_vocabulary_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 257"):
        train_tokenizer(["some text"], 100, tmp_path)

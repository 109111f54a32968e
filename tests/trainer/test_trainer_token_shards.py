"""The token-shard format: write/read round trip, dtype choice, atomicity, split, windows."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from trainer.token_shards import (
    TokenShards,
    WindowSampler,
    document_windows,
    eval_batches,
    is_token_dir,
    token_dtype,
    write_token_shards,
)
from trainer.tokenizer import encode_documents, load_tokenizer


def _real_docs(corpus, tokenizer_path, limit=None):
    tokenizer = load_tokenizer(tokenizer_path)
    chosen = corpus[:limit] if limit else corpus
    encoded = encode_documents(tokenizer, [text for text, _ in chosen])
    return [(ids, domain, n_bytes) for (ids, n_bytes), (_, domain) in zip(encoded, chosen, strict=True)]


def test_round_trip_of_documents_domains_and_bytes(corpus, tokenizer_path, token_dir):
    docs = _real_docs(corpus, tokenizer_path)
    shards = TokenShards(token_dir)
    assert len(shards) == len(docs)
    assert shards.tokens.dtype == np.dtype("<u2") and shards.meta["dtype"] == "uint16"
    assert shards.meta["n_tokens"] == sum(len(ids) for ids, _, _ in docs)
    assert shards.domains == ["code", "news", "wiki"]
    for index, (ids, domain, n_bytes) in enumerate(docs):
        assert np.array_equal(shards.document(index), ids)
        assert shards.domains[shards.domain_ids[index]] == domain
        assert shards.n_bytes[index] == n_bytes
    table = pq.read_table(token_dir / "documents.parquet")
    assert table.schema.names == ["start", "length", "domain", "n_bytes", "url", "site"]  # metadata: null
    assert str(table.schema.field("start").type) == "int64"
    meta = json.loads((token_dir / "tokens.json").read_text())
    assert meta["tokenizer"]["sha256"] and meta["eot_id"] == 0
    assert meta["domains"]["news"]["documents"] == 80


def test_n_bytes_is_recovered_by_decoding_when_not_given(corpus, tokenizer_path, tmp_path):
    docs = _real_docs(corpus, tokenizer_path, limit=5)
    write_token_shards(tmp_path, [(ids, domain) for ids, domain, _ in docs], 512, tokenizer_path)
    assert list(TokenShards(tmp_path).n_bytes) == [n for _, _, n in docs]


def test_vocab_above_65536_switches_to_uint32(corpus, tokenizer_path, tmp_path):
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    docs = _real_docs(corpus, tokenizer_path, limit=3)
    wide = [(ids + 69_000 * (ids > 100), domain, n) for ids, domain, n in docs]  # ids beyond uint16
    write_token_shards(tmp_path, wide, 70_000, tokenizer_path)
    shards = TokenShards(tmp_path)
    assert shards.meta["dtype"] == "uint32"
    assert (tmp_path / "tokens.bin").stat().st_size == 4 * shards.meta["n_tokens"]
    assert np.array_equal(shards.document(2), wide[2][0]) and shards.document(2).max() > 65535


def test_out_of_range_ids_are_refused_and_leave_no_finished_folder(corpus, tokenizer_path, tmp_path):
    docs = _real_docs(corpus, tokenizer_path, limit=3)
    with pytest.raises(ValueError, match="out of range"):
        write_token_shards(tmp_path, docs + [(np.array([600]), "web", 3)], 512, tokenizer_path)
    assert not is_token_dir(tmp_path)
    assert not (tmp_path / "tokens.bin").exists()
    with pytest.raises(FileNotFoundError, match="not a token-shard folder"):
        TokenShards(tmp_path)


def test_truncated_token_file_is_detected(corpus, tokenizer_path, tmp_path):
    write_token_shards(tmp_path, _real_docs(corpus, tokenizer_path, limit=3), 512, tokenizer_path)
    with open(tmp_path / "tokens.bin", "r+b") as handle:
        handle.truncate(10)
    with pytest.raises(ValueError, match="bytes, expected"):
        TokenShards(tmp_path)


def test_split_is_disjoint_deterministic_and_per_domain(token_dir):
    shards = TokenShards(token_dir)
    split = shards.split(0.1, seed=3)
    assert not set(split.train) & set(split.eval)
    assert set(split.train) | set(split.eval) == set(np.flatnonzero(shards.lengths > 0))
    per_domain = np.bincount(shards.domain_ids[split.eval], minlength=3)
    assert list(per_domain) == [3, 8, 2]  # round(10% of 30, 80, 24)
    assert np.array_equal(shards.split(0.1, seed=3).eval, split.eval)
    assert not np.array_equal(shards.split(0.1, seed=4).eval, split.eval)


def test_windows_are_seeded_and_drawn_only_from_training_documents(token_dir):
    shards = TokenShards(token_dir)
    split = shards.split(0.1)
    sampler = WindowSampler(shards, split.train, batch_size=8, seq_len=32, seed=7)
    stream = np.concatenate([shards.document(i) for i in split.train])
    all_windows = np.lib.stride_tricks.sliding_window_view(stream, 33)
    for index in range(3):
        batch = sampler.batch(index)
        assert batch.shape == (8, 33) and batch.dtype == np.int64
        for window in batch:
            assert (all_windows == window).all(axis=1).any()
    assert np.array_equal(next(sampler), sampler.batch(0)) and sampler.next_index == 1
    assert not np.array_equal(sampler.batch(1), sampler.batch(0))
    other = WindowSampler(shards, split.train, batch_size=8, seq_len=32, seed=8)
    assert not np.array_equal(other.batch(0), sampler.batch(0))
    resumed = WindowSampler(shards, split.train, batch_size=8, seq_len=32, seed=7)
    resumed.load_state_dict(sampler.state_dict())
    assert np.array_equal(next(resumed), sampler.batch(1))


def test_eval_windows_predict_every_token_of_a_document_exactly_once(token_dir):
    shards = TokenShards(token_dir)
    docs = shards.split(0.1).eval[:4]
    targets = []
    for batch in eval_batches(shards, docs, seq_len=16, batch_size=5):
        assert batch.inputs.shape[1] == 16 and np.array_equal(
            batch.inputs[:, 1:][batch.mask[:, 1:]], batch.targets[:, :-1][batch.mask[:, 1:]]
        )
        targets.append(batch.targets[batch.mask])
    assert np.array_equal(np.concatenate(targets), np.concatenate([shards.document(i) for i in docs]))


def test_a_prefix_heads_every_window_and_every_token_is_still_predicted_once(token_dir):
    shards = TokenShards(token_dir)
    doc = next(int(d) for d in shards.split(0.1).eval if shards.lengths[d] > 40)  # several windows long
    tokens = shards.document(doc)
    windows = list(document_windows(tokens, 16, shards.eot_id, np.array([5, 6, 7])))
    assert len(windows) == -(-len(tokens) // (16 + 1 - 4)) > 2  # 13 document tokens per window
    for inputs, _, counted in windows:
        assert list(inputs[:4]) == [shards.eot_id, 5, 6, 7] and len(inputs) <= 16
        assert not counted[:3].any() and counted[3:].all()  # the prefix is context, never a target
    assert np.array_equal(np.concatenate([t[c] for _, t, c in windows]), tokens)
    empty = list(document_windows(tokens, 16, shards.eot_id, np.zeros(0, dtype=np.int64)))
    assert all(inputs[0] == shards.eot_id for inputs, _, _ in empty)  # each window restarts at a boundary
    assert np.array_equal(np.concatenate([t[c] for _, t, c in empty]), tokens)
    with pytest.raises(ValueError, match="no room"):
        next(document_windows(tokens, 4, shards.eot_id, np.arange(5)))

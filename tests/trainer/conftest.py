"""Shared fixtures of the trainer tests: real text (shipped by packages) tokenized once per session.

The tests train many tiny models; on a shared 2-core machine torch's default of one thread per core
slows them down badly when other processes compete, so each test runs single-threaded (and the numbers
compared across runs are produced under the same thread count).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from bench.filtering_pool import FilterModels
from curate.textsources import news_texts, stdlib_sources, wikipedia_pages
from trainer.token_shards import write_token_shards
from trainer.tokenizer import encode_documents, load_tokenizer, train_tokenizer

VOCAB = 512


@pytest.fixture(autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def corpus() -> list[tuple[str, str]]:
    """(text, domain): Wikipedia pages, news articles and standard-library code, a few hundred KB."""
    wiki = [(text[:6000], "wiki") for _, text in itertools.islice(wikipedia_pages(), 24)]
    news = [(text, "news") for text in itertools.islice(news_texts(), 80)]
    code = [(source[:6000], "code") for _, source in stdlib_sources(30)]
    return wiki + news + code


@pytest.fixture(scope="session")
def tokenizer_path(corpus: list[tuple[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer([text for text, _ in corpus], VOCAB, tmp_path_factory.mktemp("tokcache"))


@pytest.fixture(scope="session")
def token_dir(
    corpus: list[tuple[str, str]], tokenizer_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    tokenizer = load_tokenizer(tokenizer_path)
    encoded = encode_documents(tokenizer, [text for text, _ in corpus])
    docs = ((ids, domain, n_bytes) for (ids, n_bytes), (_, domain) in zip(encoded, corpus, strict=True))
    folder = tmp_path_factory.mktemp("shards")
    write_token_shards(folder, docs, tokenizer.get_vocab_size(), tokenizer_path)
    return folder


@pytest.fixture(scope="session")
def small_quality_model(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> FilterModels:
    """A quick classifier-only quality model (no KenLM: building lmplz would cost minutes), trained once for
    the benches that rank by quality (filtering, proxy fidelity)."""
    from filters.quality_recipe import train_quality

    home = tmp_path_factory.mktemp("bench-filtering-models")
    hyperparams = {"epoch": 2, "dim": 16, "bucket": 50_000}
    train_quality(
        "quality-bench", lm=None, books_mb=0.5, hyperparams=hyperparams, home=home, log=lambda _: None
    )
    return FilterModels(lm=None, quality="quality-bench", home=home)

"""Fixtures of the API tests: package-shipped text, a data root, and one real server for the session."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from api_harness import DOC_CHARS, Server, curate_config, make_shards, mix_spec

from api.client import ApiClient
from api.kinds import is_available
from curate.textsources import news_texts, stdlib_sources, wikipedia_pages


@pytest.fixture(scope="session")
def texts() -> dict[str, list[dict[str, Any]]]:
    """Real documents: Wikipedia pages and news (gensim's wheel), standard-library modules as code."""
    wiki = [
        {
            "id": f"wiki/{i}",
            "text": text[:DOC_CHARS],
            "url": "https://en.wikipedia.org/wiki/" + title.replace(" ", "_"),
        }
        for i, (title, text) in enumerate(itertools.islice(wikipedia_pages(), 72))
    ]
    news = [{"id": f"news/{i}", "text": text} for i, text in enumerate(itertools.islice(news_texts(), 40))]
    code = [
        {"id": f"code/{name}", "text": source[:DOC_CHARS], "url": f"https://github.com/python/cpython/{name}"}
        for name, source in stdlib_sources(16)
    ]
    return {"wiki": wiki, "news": news, "code": code}


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("state"), data_root, extra=("--job-slots", "2")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[ApiClient]:
    with server.client() as api:
        yield api


@pytest.fixture(scope="session")
def finished_job(
    client: ApiClient, data_root: Path, texts: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """A small curate job (4 shards, one with an unreadable and an empty record), run to the end."""
    make_shards(data_root / "jobs-in", texts["wiki"][:24], per_shard=6)
    job = client.submit_job("curate", curate_config("jobs-in/*.jsonl.gz"))
    assert job["state"] == "queued" and job["progress"]["planned"] == 4
    return client.wait_job(job["id"], timeout=120)


@pytest.fixture(scope="session")
def proxy_chain(server: Server, finished_job: dict[str, Any]) -> Iterator[Future]:
    """mix -> train on the finished corpus, started in the background as soon as the corpus exists, so
    the slowest chain of the suite overlaps the tests that do not need it (the server has two slots)."""
    with ThreadPoolExecutor(1, thread_name_prefix="proxy-chain") as pool:
        yield pool.submit(_mix_then_train, server, finished_job["output"])


TRAIN = {"steps": 2, "batch_size": 2, "seq_len": 32, "vocab_size": 320, "precision": "fp32",
         "max_eval_tokens_per_domain": 512, "threads": 1}  # fmt: skip


def _mix_then_train(server: Server, corpus: str) -> dict[str, dict[str, Any] | None]:
    """mix -> train -> mixsearch (each when this build has it); a failed step ends the chain."""
    done: dict[str, dict[str, Any] | None] = {"mix": None, "train": None, "mixsearch": None}
    search = {"strategy": "natural", "budget": {"runs": 0, "steps": 1}, "mixture": mix_spec(corpus)}
    del search["mixture"]["domains"]  # the search fills them in
    steps = [
        ("mix", lambda: mix_spec(corpus)),
        ("train", lambda: {"mixture": done["mix"]["output"], **TRAIN}),
        ("mixsearch", lambda: {"tokens": str(Path(done["train"]["output"]) / "tokens"), **search}),
    ]
    with server.client() as api:
        for kind, config in steps:
            if not is_available(kind):
                break
            done[kind] = api.wait_job(api.submit_job(kind, config())["id"], timeout=300)
            if done[kind]["state"] != "succeeded":
                break
    return done


@pytest.fixture(scope="session", autouse=True)
def start_proxy_chain_early(request: pytest.FixtureRequest) -> None:
    """Start the chain at the first test when any selected test will need it."""
    if any(
        {"mixture_job", "train_job"} & set(getattr(item, "fixturenames", ()))
        for item in request.session.items
    ):
        request.getfixturevalue("proxy_chain")


def _chain_result(proxy_chain: Future, kind: str) -> dict[str, Any]:
    job = proxy_chain.result(timeout=900)[kind]
    if job is None:
        pytest.skip(
            f"job kind {kind} is not available in this build (or an earlier step of the chain failed)"
        )
    return job


@pytest.fixture(scope="session")
def mixture_job(proxy_chain: Future) -> dict[str, Any]:
    """A mixture (estimated token counts) of the finished job's corpus."""
    return _chain_result(proxy_chain, "mix")


@pytest.fixture(scope="session")
def train_job(proxy_chain: Future) -> dict[str, Any]:
    """The smallest real proxy run on that mixture: two steps, then evaluated and scored."""
    return _chain_result(proxy_chain, "train")


@pytest.fixture(scope="session")
def mixsearch_job(proxy_chain: Future) -> dict[str, Any]:
    """A search over the proxy run's token shards (the `natural` strategy: no proxy runs of its own)."""
    return _chain_result(proxy_chain, "mixsearch")

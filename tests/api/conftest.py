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


CHAIN = ("mix", "train", "mixsearch")
CHAIN_FIXTURES = {"mixture_job", "train_job", "mixsearch_job", "scored"}  # scored: the dashboard's
TRAIN = {"steps": 2, "batch_size": 2, "seq_len": 32, "vocab_size": 320, "precision": "fp32",
         "max_eval_tokens_per_domain": 512, "threads": 1}  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that need the background chain run last, so the chain overlaps every other test."""
    items.sort(key=lambda item: bool(CHAIN_FIXTURES & set(getattr(item, "fixturenames", ()))))


@pytest.fixture(scope="session")
def proxy_chain(server: Server, finished_job: dict[str, Any]) -> Iterator[dict[str, Future]]:
    """mix -> train -> mixsearch on the finished corpus, started in the background as soon as the corpus
    exists (the server has two job slots); one future per step, so a test waits only for its own."""
    steps: dict[str, Future] = {kind: Future() for kind in CHAIN}
    with ThreadPoolExecutor(1, thread_name_prefix="proxy-chain") as pool:
        pool.submit(_run_chain, server, finished_job["output"], steps)
        yield steps


def _run_chain(server: Server, corpus: str, steps: dict[str, Future]) -> None:
    """Each step when this build has its kind; after a missing or failed step the rest resolve to None."""
    done: dict[str, Any] = {}
    search = {"strategy": "natural", "budget": {"runs": 0, "steps": 1}, "mixture": mix_spec(corpus)}
    del search["mixture"]["domains"]  # the search fills them in
    configs = {
        "mix": lambda: mix_spec(corpus),
        "train": lambda: {"mixture": done["mix"]["output"], **TRAIN},
        "mixsearch": lambda: {"tokens": str(Path(done["train"]["output"]) / "tokens"), **search},
    }
    try:
        with server.client() as api:
            for kind in CHAIN:
                if not is_available(kind):
                    break
                done[kind] = api.wait_job(api.submit_job(kind, configs[kind]())["id"], timeout=300)
                steps[kind].set_result(done[kind])
                if done[kind]["state"] != "succeeded":
                    break
    finally:
        for future in steps.values():
            if not future.done():
                future.set_result(None)


@pytest.fixture(scope="session", autouse=True)
def start_proxy_chain_early(request: pytest.FixtureRequest) -> None:
    """Start the chain at the first test when any selected test will need it."""
    if any(CHAIN_FIXTURES & set(getattr(item, "fixturenames", ())) for item in request.session.items):
        request.getfixturevalue("proxy_chain")


def _chain_result(proxy_chain: dict[str, Future], kind: str) -> dict[str, Any]:
    job = proxy_chain[kind].result(timeout=900)
    if job is None:
        pytest.skip(
            f"job kind {kind} is not available in this build (or an earlier step of the chain failed)"
        )
    return job


@pytest.fixture(scope="session")
def mixture_job(proxy_chain: dict[str, Future]) -> dict[str, Any]:
    """A mixture (estimated token counts) of the finished job's corpus."""
    return _chain_result(proxy_chain, "mix")


@pytest.fixture(scope="session")
def train_job(proxy_chain: dict[str, Future]) -> dict[str, Any]:
    """The smallest real proxy run on that mixture: two steps, then evaluated and scored."""
    return _chain_result(proxy_chain, "train")


@pytest.fixture(scope="session")
def mixsearch_job(proxy_chain: dict[str, Future]) -> dict[str, Any]:
    """A search over the proxy run's token shards (the `natural` strategy: no proxy runs of its own)."""
    return _chain_result(proxy_chain, "mixsearch")

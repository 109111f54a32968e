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


def _mix_then_train(server: Server, corpus: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if not is_available("mix"):
        return None, None
    with server.client() as api:
        mix = api.wait_job(api.submit_job("mix", mix_spec(corpus))["id"], timeout=180)
        if not is_available("train") or mix["state"] != "succeeded":
            return mix, None
        config = {"mixture": mix["output"], "steps": 2, "batch_size": 2, "seq_len": 32, "vocab_size": 320,
                  "precision": "fp32", "max_eval_tokens_per_domain": 512, "threads": 1}  # fmt: skip
        return mix, api.wait_job(api.submit_job("train", config)["id"], timeout=300)


@pytest.fixture(scope="session", autouse=True)
def start_proxy_chain_early(request: pytest.FixtureRequest) -> None:
    """Start the chain at the first test when any selected test will need it."""
    if any(
        {"mixture_job", "train_job"} & set(getattr(item, "fixturenames", ()))
        for item in request.session.items
    ):
        request.getfixturevalue("proxy_chain")


@pytest.fixture(scope="session")
def mixture_job(proxy_chain: Future) -> dict[str, Any]:
    """A mixture (estimated token counts) of the finished job's corpus."""
    mix, _ = proxy_chain.result(timeout=600)
    if mix is None:
        pytest.skip("job kind mix is not available in this build")
    return mix


@pytest.fixture(scope="session")
def train_job(proxy_chain: Future) -> dict[str, Any]:
    """The smallest real proxy run on that mixture: two steps, then evaluated and scored."""
    _, train = proxy_chain.result(timeout=600)
    if train is None:
        pytest.skip("job kind train is not available in this build (or the mixture failed)")
    return train

"""url_filter on the real URLs of ../shared/data/web, with blocklists written into tmp_path: domains block
their subdomains only at a dot, URL entries block at a `/`, words match whole URL tokens, and a CLI run
records the drops by list name."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pytest

from curate.config import parse_config
from curate.errors import ConfigError
from curate.paths import PathField, confined_paths
from curate.schema import BASE_SCHEMA, conform
from curate.stages.base import StageResult
from curate.stages.registry import get_stage
from filters.url_filter import UrlFilterParams
from tests.conftest import run_cli
from tests.core.helpers import read_parts, write_config
from tests.filters.web_docs import WebDoc, web_docs


@pytest.fixture(scope="module")
def docs(web: Path) -> list[WebDoc]:
    found = web_docs(web)
    assert sum(doc.url is not None for doc in found) >= 50
    return found


def without_url(docs: list[WebDoc]) -> int:
    return sum(doc.url is None for doc in docs)


def host(url: str | None) -> str:
    return (urlsplit(url).hostname or "") if url else ""


def list_file(folder: Path, name: str, entries: list[str]) -> str:
    path = folder / name
    path.write_text("# written by the test\n\n" + "\n".join(entries) + "\n", encoding="utf-8")
    return str(path)


def run_filter(docs: list[WebDoc], **params) -> StageResult:
    table = pa.table(
        {
            "id": [f"doc{i}" for i in range(len(docs))],
            "text": pa.array([doc.text for doc in docs], pa.large_string()),
            "url": pa.array([doc.url for doc in docs], pa.string()),
            "source": [doc.file for doc in docs],
        }
    )
    stage = get_stage("url_filter")(UrlFilterParams.model_validate(params))
    stage.setup()
    return stage.process(conform(table, BASE_SCHEMA))


def dropped(result: StageResult) -> list[int]:
    return [i for i, reason in enumerate(result.drop_reason.to_pylist()) if reason is not None]


def test_a_domain_blocks_its_subdomains_but_not_a_name_that_ends_alike(
    docs: list[WebDoc], tmp_path: Path
) -> None:
    blogs = [i for i, doc in enumerate(docs) if host(doc.url).endswith(".blogspot.com")]
    victim = next(i for i, doc in enumerate(docs) if host(doc.url) == "www.kentlive.news")
    assert len(blogs) >= 3
    entries = ["blogspot.com", "live.news", "*.example.org"]  # live.news is no parent of kentlive.news
    result = run_filter(docs, lists={"blogs": {"domains": list_file(tmp_path, "domains", entries)}})
    assert dropped(result) == blogs and victim not in dropped(result)
    assert set(result.drop_reason.to_pylist()) == {None, "url_filter:blogs"}
    assert dict(result.stats) == {
        "url_filter:blogs:domains": len(blogs),
        "url_filter:no_url": without_url(docs),
    }


def test_a_url_entry_blocks_the_pages_under_it_at_a_slash(docs: list[WebDoc], tmp_path: Path) -> None:
    target = next(d.url for d in docs if d.url and urlsplit(d.url).path.count("/") >= 3)
    parts = urlsplit(target)
    section = host(target).removeprefix("www.") + "/" + parts.path.split("/")[1]
    under = [
        i
        for i, d in enumerate(docs)
        if d.url and d.url.split("://")[1].removeprefix("www.").startswith(section + "/")
    ]
    cut = run_filter(docs, lists={"pages": {"urls": list_file(tmp_path, "cut", [section[:-1]])}})
    assert not dropped(cut), f"{section[:-1]} is a prefix of {section}, but not at a slash"
    result = run_filter(docs, lists={"pages": {"urls": list_file(tmp_path, "urls", [f"http://{section}/"])}})
    assert under and dropped(result) == under
    assert result.stats["url_filter:pages:urls"] == len(under)


def test_words_match_whole_url_tokens_only(docs: list[WebDoc], tmp_path: Path) -> None:
    tourist = [i for i, d in enumerate(docs) if d.url and "tourist" in d.url.lower()]
    assert tourist, "real URLs hold the word 'tourist'"
    inside = run_filter(docs, lists={"travel": {"words": list_file(tmp_path, "tour", ["tour"])}})
    assert not set(tourist) & set(dropped(inside)), "tour is inside tourist, not a token of the URL"
    result = run_filter(docs, lists={"travel": {"words": list_file(tmp_path, "words", ["tour", "Tourist"])}})
    expected = [i for i, d in enumerate(docs) if d.url and {"tourist", "tour"} & url_tokens(d.url)]
    assert dropped(result) == expected and set(tourist) <= set(expected)


def url_tokens(url: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", url.lower()))


def test_first_list_names_the_reason_and_documents_without_url_follow_no_url(
    docs: list[WebDoc], tmp_path: Path
) -> None:
    domains = list_file(tmp_path, "domains", ["blogspot.com"])
    lists = {"second": {"domains": domains}, "first": {"domains": domains}}
    result = run_filter(docs, lists=lists, no_url="drop")
    reasons = result.drop_reason.to_pylist()
    assert {reasons[i] for i, d in enumerate(docs) if d.url is None} == {"url_filter:no_url"}
    assert {reasons[i] for i, d in enumerate(docs) if "blogspot" in host(d.url)} == {"url_filter:second"}
    assert "url_filter:first:domains" not in result.stats


def test_missing_or_refused_files_are_one_line_errors(tmp_path: Path) -> None:
    def config(files: dict) -> dict:
        return {"inputs": [{"path": "x.jsonl"}], "stages": [{"url_filter": {"lists": {"adult": files}}}]}

    missing = tmp_path / "ut1" / "adult" / "domains"
    with pytest.raises(ConfigError, match=rf"lists\.adult\.domains: file {missing} does not exist; give the"):
        parse_config(config({"domains": str(missing)}))
    with pytest.raises(ConfigError, match="needs at least one of `domains`, `urls`, `words`"):
        parse_config(config({}))
    with pytest.raises(ConfigError, match="'porn videos' is not one word"):
        parse_config(config({"words": list_file(tmp_path, "words", ["porn videos"])}))

    def refuse(value: str, marker: PathField) -> str:
        """A host's confinement: the file is refused before anything looks at it."""
        if value.startswith("/etc"):
            raise ValueError(f"{value} is outside the data roots")
        return value

    with (
        confined_paths(refuse),
        pytest.raises(ConfigError, match=r"domains: /etc/passwd is outside the data roots"),
    ):
        parse_config(config({"domains": "/etc/passwd"}))


def test_cli_run_records_rejects_by_list_name(docs: list[WebDoc], tmp_path: Path) -> None:
    shard = tmp_path / "web.jsonl"
    rows = [{"id": f"w{i}", "text": d.text, "url": d.url} for i, d in enumerate(docs)]
    shard.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    lists = {"blogs": {"domains": list_file(tmp_path, "domains", ["blogspot.com"])}}
    raw = {"inputs": [{"path": str(shard), "name": "web"}], "stages": [{"url_filter": {"lists": lists}}]}
    result = run_cli("run", str(write_config(tmp_path, raw)), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    blogs = {f"w{i}" for i, d in enumerate(docs) if host(d.url).endswith(".blogspot.com")}
    funnel = {s["stage"]: s for s in json.loads((tmp_path / "out" / "manifest.json").read_text())["stages"]}
    assert funnel["url_filter"]["dropped"] == {"url_filter:blogs": len(blogs)}
    assert funnel["url_filter"]["stats"] == {
        "url_filter:blogs:domains": len(blogs),
        "url_filter:no_url": without_url(docs),
    }
    rejects = read_parts(tmp_path / "out" / "rejects").to_pylist()
    assert {r["id"] for r in rejects} == blogs
    assert {(r["reject_reason"], r["reject_stage"]) for r in rejects} == {("url_filter:blogs", "url_filter")}

"""normalize and tag on real text, and the stage contract the executor enforces."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curate.stages.normalize import Normalize, NormalizeParams
from curate.stages.registry import get_stage, stage_names
from curate.stages.tag import Tag, TagParams
from curate.textsources import news_texts, stdlib_sources


def batch(
    texts: list[str], urls: list[str | None] | None = None, sources: list[str] | None = None
) -> pa.Table:
    n = len(texts)
    return pa.table(
        {
            "id": [str(i) for i in range(n)],
            "text": pa.array(texts, pa.large_string()),
            "url": pa.array(urls or [None] * n, pa.string()),
            "source": sources or ["in/file"] * n,
            "domain": pa.array([None] * n, pa.string()),
        }
    )


def test_normalize_cleans_but_keeps_indentation() -> None:
    source = dict(stdlib_sources(30))["abc.py"]
    dirty = "\ufeff" + source.replace("\n", "\r\n").replace("def ", "def\u00a0") + "\x07\n\n\n\n"
    result = Normalize(NormalizeParams()).process(batch([dirty, "cafe\u0301", " \u200b\t "]))
    clean, nfc, empty = result.table.column("text").to_pylist()
    assert "\r" not in clean and "\ufeff" not in clean and "\x07" not in clean and "\u00a0" not in clean
    assert "\n    def " in clean, "leading indentation survives"
    assert "\n\n\n" not in clean
    assert nfc == "caf\u00e9"
    assert result.drop_reason.to_pylist() == [None, None, "empty"]


def test_normalize_is_idempotent_on_real_news() -> None:
    texts = list(news_texts())[:100]
    stage = Normalize(NormalizeParams(ftfy=True))
    once = stage.process(batch(texts)).table
    twice = stage.process(once).table
    assert once.column("text").equals(twice.column("text"))


def test_tag_sites_sizes_and_first_matching_rule() -> None:
    params = TagParams.model_validate(
        {
            "domain": {
                "default": "web",
                "rules": [
                    {"domain": "wiki", "site": "wikipedia.org"},
                    {"domain": "code", "url_glob": "https://github.com/*"},
                    {"domain": "news", "url_regex": r"^https?://[^/]*bbc\.co\.uk/news"},
                    {"domain": "books", "input": "gutenberg"},
                    {"domain": "never", "site": "wikipedia.org"},
                ],
            }
        }
    )
    stage = Tag(params)
    stage.setup()
    urls = [
        "https://de.wikipedia.org/wiki/X",
        "https://github.com/a/b",
        "http://www.bbc.co.uk/news/uk-1",
        None,
        "https://example.com/page",
    ]
    sources = ["web/a", "web/a", "web/a", "gutenberg/book.txt", "web/a"]
    table = stage.process(batch(["one two\nthree", "x", "y", "z", "w"], urls, sources)).table
    rows = table.to_pylist()
    assert [r["domain"] for r in rows] == ["wiki", "code", "news", "books", "web"]
    assert [r["site"] for r in rows] == ["wikipedia.org", "github.com", "bbc.co.uk", None, "example.com"]
    assert rows[2]["tld"] == "co.uk"
    assert (rows[0]["n_chars"], rows[0]["n_words"], rows[0]["n_lines"]) == (13, 3, 2)


def test_input_domain_is_kept_when_no_rule_matches() -> None:
    stage = Tag(TagParams())
    stage.setup()
    table = batch(["a", "b"]).set_column(4, "domain", pa.array(["books", None], pa.string()))
    assert stage.process(table).table.column("domain").to_pylist() == ["books", "web"]


def test_registry_knows_builtins_and_rejects_unknown() -> None:
    assert {"normalize", "tag"} <= set(stage_names())
    with pytest.raises(KeyError, match="known stages"):
        get_stage("does-not-exist")

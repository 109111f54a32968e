"""langid on real text: French books vs English news, keep-lists, scores, the UDHR evaluation."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pyarrow as pa
import pytest

from curate.config import parse_config
from curate.errors import ConfigError
from curate.schema import BASE_SCHEMA, conform
from curate.stages.registry import get_stage
from curate.textsources import book_passages, news_texts, wikipedia_pages
from filters.langid import LangId, LangIdParams, one_line
from filters.langid_recipe import evaluate_udhr


def batch_of(texts: list[str | None]) -> pa.Table:
    ids = [f"doc{i}" for i in range(len(texts))]
    table = pa.table({"id": ids, "text": pa.array(texts, pa.large_string()), "source": ["test"] * len(texts)})
    return conform(table, BASE_SCHEMA)


def run_langid(texts: list[str | None], **params) -> tuple[list[dict], list[str | None]]:
    stage = get_stage("langid")(LangIdParams(**params))
    stage.setup()
    result = stage.process(batch_of(texts))
    rows = result.table.select(["lang", "lang_score"]).to_pylist()
    return rows, result.drop_reason.to_pylist()


@pytest.fixture(scope="module")
def french(shared: Path) -> list[str]:
    """Passages from the middle of the French books (their Gutenberg header and footer are English)."""
    passages = [text for _, text in book_passages(shared / "langid" / "french_books", passage_chars=2000)]
    assert len(passages) > 60
    return passages[10:20] + passages[-30:-20]


def test_registered_with_declared_columns() -> None:
    stage = get_stage("langid")(LangIdParams())
    assert isinstance(stage, LangId)
    assert [f.name for f in stage.output_fields()] == ["lang", "lang_score"]


def test_french_books_are_french_and_english_news_is_english(french: list[str]) -> None:
    news = list(islice(news_texts(), 40))
    rows, reasons = run_langid(french + news, langs=["en"])
    assert [r["lang"] for r in rows[: len(french)]] == ["fr"] * len(french)
    assert sum(r["lang"] == "en" for r in rows[len(french) :]) >= len(news) - 1
    assert all(0.0 <= r["lang_score"] <= 1.0 for r in rows)
    assert set(reasons[: len(french)]) == {"lang:not_kept"}
    assert reasons[len(french) :].count(None) >= len(news) - 1


def test_multi_line_wikipedia_pages_are_classified_whole() -> None:
    pages = [text for _, text in islice(wikipedia_pages(), 30)]
    assert all("\n" in page for page in pages)
    rows, reasons = run_langid(pages, langs=["en", "fr"])
    assert sum(r["lang"] == "en" for r in rows) >= 28
    assert reasons.count(None) >= 27


def test_min_score_and_empty_text_have_their_own_reasons() -> None:
    news = next(news_texts())
    gibberish = "qzx vbn 1234 ## !! ok xkcd zzz"
    rows, reasons = run_langid([news, gibberish, "", "   \n ", None], min_score=0.9)
    assert rows[0]["lang"] == "en" and reasons[0] is None
    assert rows[1]["lang_score"] < 0.9 and reasons[1] == "lang:low_score"
    assert [r["lang"] for r in rows[2:]] == [None, None, None]
    assert reasons[2:] == ["lang:empty"] * 3


def test_tag_only_configuration_keeps_everything(french: list[str]) -> None:
    rows, reasons = run_langid(french[:3] + ["qzx vbn 1234"], min_score=0.0)
    assert reasons == [None] * 4
    assert rows[0]["lang"] == "fr"


def test_one_line_removes_every_line_break() -> None:
    texts = one_line(pa.array(["a\nb\r\nc\u2028d", None], pa.large_string()))
    assert texts == ["a b c d", ""]


def test_unknown_language_code_is_a_one_line_config_error() -> None:
    raw = {"inputs": [{"path": "x.jsonl"}], "stages": [{"langid": {"langs": ["en", "klingon"]}}]}
    with pytest.raises(ConfigError, match="klingon"):
        parse_config(raw)


def test_udhr_accuracy(shared: Path) -> None:
    result = evaluate_udhr(shared / "langid" / "udhr2.zip")
    assert result["languages"] >= 100
    assert result["top50_document_accuracy"] >= 0.95
    assert result["top50_line_accuracy"] >= 0.9
    assert 0.5 < result["line_accuracy"] < result["top50_line_accuracy"]

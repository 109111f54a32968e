"""Which copy survives: the keep policy on a crafted docs table (real sketches of real, edited text),
run through the same functions the dedup phase uses: load_docs -> candidate_pairs -> verified_pairs ->
choose_keepers."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.dedup.cluster import candidate_pairs, choose_keepers, load_docs, open_work_db, verified_pairs
from curate.dedup.settings import DedupConfig
from curate.dedup.sketch import hasher_for, sketch_batch
from curate.schema import TIMESTAMP
from curate.textsources import book_passages

HEADER = "Home | Books | Authors | Contact\nSkip to main content\n\n"
FOOTER = "\n\nCopyright 2021 Classic Reads. All rights reserved. Privacy Policy | Terms of Use"


@pytest.fixture(scope="module")
def passage(shared: Path) -> str:
    passages = islice(book_passages(shared / "domains" / "books", 3000), 50)
    return next(t for _, t in passages if len(t.split()) >= 400 and "gutenberg" not in t.lower())


def day(n: int) -> datetime:
    return datetime(2020, 1, n, tzinfo=UTC)


def sketch_file(path: Path, docs: list[dict[str, Any]], config: DedupConfig) -> Path:
    columns: dict[str, Any] = {
        "id": pa.array([d["id"] for d in docs], pa.string()),
        "text": pa.array([d["text"] for d in docs], pa.large_string()),
        "source": pa.array([d.get("source", "run/shard.jsonl") for d in docs], pa.string()),
        "domain": pa.array(["web"] * len(docs), pa.string()),
        "crawl_date": pa.array([d.get("crawl_date") for d in docs], TIMESTAMP),
    }
    if any("quality" in d for d in docs):
        columns["quality"] = pa.array([d.get("quality") for d in docs], pa.float64())
    pq.write_table(sketch_batch(pa.table(columns), hasher_for(config)), path)
    return path


def clusters(
    tmp_path: Path, docs: list[dict[str, Any]], config: DedupConfig, index_docs: list[dict] | None = None
) -> dict[str, tuple[str, bool, str | None]]:
    """id -> (cluster, is keeper, reason) for this run's clustered documents."""
    sketches = [sketch_file(tmp_path / "run.parquet", docs, config)]
    segments = []
    if index_docs:
        index = pq.read_table(sketch_file(tmp_path / "index-raw.parquet", index_docs, config))
        segment = index.select(["id", "n_chars", "crawl_date", "quality", "exact_hash", "bands", "signature"])
        pq.write_table(segment, tmp_path / "segment.parquet")
        segments.append(tmp_path / "segment.parquet")
    con = open_work_db(tmp_path / "work.duckdb", config)
    load_docs(con, sketches, segments)
    candidate_pairs(con, config)
    a, b, _ = verified_pairs(con, config, None)
    members = choose_keepers(con, a, b, config).members.to_pylist()
    con.close()
    return {m["id"]: (m["cluster"], m["keeper"], m["reason"]) for m in members}


def variants(passage: str) -> dict[str, str]:
    """Three near-duplicates of one passage, of increasing length."""
    return {"short": passage, "long": passage + FOOTER, "longest": HEADER + passage + FOOTER}


def test_highest_quality_is_kept_when_a_quality_column_exists(tmp_path: Path, passage: str) -> None:
    texts = variants(passage)
    quality = {"short": 0.9, "long": 0.2, "longest": 0.5}
    docs = [{"id": k, "text": t, "quality": quality[k], "crawl_date": day(1)} for k, t in texts.items()]
    result = clusters(tmp_path, docs, DedupConfig())
    assert result == {
        "short": ("short", True, None),
        "long": ("short", False, "near_duplicate"),
        "longest": ("short", False, "near_duplicate"),
    }


def test_a_missing_quality_ranks_last(tmp_path: Path, passage: str) -> None:
    texts = variants(passage)
    docs = [
        {"id": "short", "text": texts["short"], "quality": 0.1},
        {"id": "long", "text": texts["long"]},
        {"id": "longest", "text": texts["longest"]},
    ]
    assert clusters(tmp_path, docs, DedupConfig())["short"] == ("short", True, None)


def test_longest_is_kept_without_quality_then_oldest_breaks_ties(tmp_path: Path, passage: str) -> None:
    texts = variants(passage)
    docs = [
        {"id": "short", "text": texts["short"], "crawl_date": day(1)},
        {"id": "long", "text": texts["long"], "crawl_date": day(2)},
        {"id": "z-longest-old", "text": texts["longest"], "crawl_date": day(3)},
        {"id": "a-longest-new", "text": texts["longest"].upper(), "crawl_date": day(9)},
    ]
    result = clusters(tmp_path, docs, DedupConfig())
    assert result["z-longest-old"] == ("z-longest-old", True, None)  # same length: the older one
    assert result["a-longest-new"] == ("z-longest-old", False, "exact_duplicate")  # case is not a change
    assert result["long"][:2] == result["short"][:2] == ("z-longest-old", False)


def test_oldest_first_when_the_policy_says_so(tmp_path: Path, passage: str) -> None:
    texts = variants(passage)
    dates = {"short": day(5), "long": day(2), "longest": None}
    docs = [{"id": k, "text": t, "crawl_date": dates[k]} for k, t in texts.items()]
    result = clusters(tmp_path, docs, DedupConfig(keep=["oldest", "longest"]))
    assert result["long"] == ("long", True, None)
    assert {result["short"][0], result["longest"][0]} == {"long"}


def test_ties_everywhere_fall_back_to_the_id(tmp_path: Path, passage: str) -> None:
    docs = [{"id": doc_id, "text": passage} for doc_id in ("c", "a", "b")]
    result = clusters(tmp_path, docs, DedupConfig())
    assert result == {
        "a": ("a", True, None),
        "b": ("a", False, "exact_duplicate"),
        "c": ("a", False, "exact_duplicate"),
    }


def test_an_index_document_always_wins_and_is_never_output(tmp_path: Path, passage: str) -> None:
    """Documents already shipped by an earlier run stay; this run's copies go, whatever their quality."""
    texts = variants(passage)
    docs = [{"id": k, "text": t, "quality": 0.99} for k, t in texts.items()]
    index_docs = [{"id": "shipped", "text": passage + " The end.", "quality": 0.01}]
    result = clusters(tmp_path, docs, DedupConfig(), index_docs)
    assert set(result) == {"short", "long", "longest"}
    assert all(cluster == "shipped" and not keeper for cluster, keeper, _ in result.values())


def test_unrelated_documents_are_not_clustered(tmp_path: Path, shared: Path) -> None:
    passages = [t for _, t in islice(book_passages(shared / "domains" / "books", 3000), 40)]
    docs = [{"id": f"p{n}", "text": t} for n, t in enumerate(passages) if "gutenberg" not in t.lower()]
    assert len(docs) >= 20
    assert clusters(tmp_path, docs, DedupConfig()) == {}


def test_a_chain_is_one_cluster_only_without_verification(tmp_path: Path, passage: str) -> None:
    """A; B = A's first 80% of words; C = B's last 80%. Verified, C (Jaccard ~0.6 to A) is nobody's
    duplicate; with `verify: none` a candidate pair is an edge and the whole component is one cluster."""
    words = passage.split()
    b = words[: int(len(words) * 0.8)]
    c = b[int(len(b) * 0.2) :]
    docs = [{"id": "A", "text": passage}, {"id": "B", "text": " ".join(b)}, {"id": "C", "text": " ".join(c)}]
    verified = clusters(tmp_path, docs, DedupConfig(threshold=0.7))
    assert verified == {"A": ("A", True, None), "B": ("A", False, "near_duplicate")}
    unverified = clusters(tmp_path, docs, DedupConfig(threshold=0.7, verify="none"))
    assert unverified["C"] == ("A", False, "near_duplicate")

"""Candidate pairs found one hash partition at a time are exactly the pairs of the definition: every
member of a bucket (an exact hash or a band key) paired with the bucket's first document in the order
index first, id, source. The reference below is that definition written as the window query the phase
used before it was partitioned; the corpus is generated from real news text with copies, trimmed copies
and passages reused across documents, so there are exact, near and rejected candidates."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.dedup_corpus import DedupCorpusSpec, generate_documents
from curate.dedup.cluster import (
    candidate_pairs,
    choose_keepers,
    load_docs,
    open_work_db,
    sql_list,
    verified_pairs,
)
from curate.dedup.settings import DedupConfig
from curate.dedup.sketch import hasher_for, sketch_batch
from curate.schema import TIMESTAMP
from curate.textsources import news_texts

CONFIG = DedupConfig()
SOURCES = ("in0/a.jsonl", "in1/b.jsonl", "in2/c.jsonl")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[Path]]:
    """Three sketch files of one run and one index segment (whose documents some run documents copy)."""
    books = ["\n\n".join(list(news_texts())[i::3]) for i in range(3)]
    spec = DedupCorpusSpec(docs=600, dup_rate=0.3, passage_min=150, passage_max=400)
    docs = list(generate_documents(books, spec))
    folder = tmp_path_factory.mktemp("partitions")
    sketches = []
    for n, source in enumerate(SOURCES):
        part = docs[n * 150 : (n + 1) * 150]
        # the same id in three sources: the order falls back to the source
        part += [{"id": docs[0]["id"], "text": docs[0]["text"]}] if n else []
        sketches.append(_sketch(folder / f"sketch-{n}.parquet", part, source))
    index = pq.read_table(_sketch(folder / "index-raw.parquet", docs[450:], "index/x.jsonl"))
    pq.write_table(index.drop_columns(["source", "domain"]), folder / "segment.parquet")
    return sketches, [folder / "segment.parquet"]


def _sketch(path: Path, docs: list[dict], source: str) -> Path:
    table = pa.table(
        {
            "id": pa.array([d["id"] for d in docs], pa.string()),
            "text": pa.array([d["text"] for d in docs], pa.large_string()),
            "source": pa.array([source] * len(docs), pa.string()),
            "domain": pa.array(["web"] * len(docs), pa.string()),
            "crawl_date": pa.nulls(len(docs), TIMESTAMP),
        }
    )
    pq.write_table(sketch_batch(table, hasher_for(CONFIG)), path)
    return path


def _named_pairs(con, table: str, docs: str) -> set[tuple]:
    """Pairs by (id, source, is_index) of both ends, so two numberings of the documents compare."""
    rows = con.execute(
        f"SELECT da.id, da.source, da.is_index, db.id, db.source, db.is_index, p.exact FROM {table} p "
        f"JOIN {docs} da ON da.doc = p.a JOIN {docs} db ON db.doc = p.b"
    ).fetchall()
    return set(rows)


def pairs_of(pairs: set[tuple], doc_id: str) -> set[tuple]:
    return {p for p in pairs if p[0] == doc_id}


def _reference_pairs(con, sketches: list[Path], segments: list[Path]) -> set[tuple]:
    con.execute(
        "CREATE TABLE ref_docs AS "
        "SELECT row_number() OVER (ORDER BY is_index DESC, id, source) - 1 AS doc, * FROM ("
        f"SELECT id, source, exact_hash, bands, false AS is_index FROM read_parquet({sql_list(sketches)}) "
        "UNION ALL SELECT id, NULL AS source, exact_hash, bands, true AS is_index "
        f"FROM read_parquet({sql_list(segments)}))"
    )
    con.execute(
        "CREATE TABLE ref_pairs AS SELECT a, b, bool_or(exact) AS exact FROM ("
        "SELECT doc AS a, min(doc) OVER (PARTITION BY exact_hash) AS b, true AS exact FROM ref_docs "
        "UNION ALL SELECT doc AS a, min(doc) OVER (PARTITION BY key) AS b, false AS exact "
        "FROM (SELECT doc, unnest(bands) AS key FROM ref_docs WHERE bands IS NOT NULL)) "
        "WHERE a <> b GROUP BY a, b"
    )
    return _named_pairs(con, "ref_pairs", "ref_docs")


def _run(tmp_path: Path, files: tuple[list[Path], list[Path]], partition_rows: int | None):
    con = open_work_db(tmp_path / "work.duckdb", CONFIG)
    load_docs(con, *files)
    candidate_pairs(con, CONFIG, partition_rows)
    return con


@pytest.mark.parametrize("partition_rows", [None, 400])
def test_partitioned_candidates_are_the_pairs_of_the_definition(
    tmp_path: Path, files: tuple[list[Path], list[Path]], partition_rows: int | None
) -> None:
    con = _run(tmp_path, files, partition_rows)
    pairs = _named_pairs(con, "pairs", "docs")
    assert pairs == _reference_pairs(con, *files)
    exact = {p for p in pairs if p[-1]}
    assert exact and len(pairs) > 2 * len(exact)  # copies found both ways, and many near candidates
    assert any(p[5] for p in pairs)  # index documents are centres
    first = pairs_of(pairs, "r0-0")
    assert {(p[0], p[1]) for p in first} >= {("r0-0", SOURCES[1]), ("r0-0", SOURCES[2])}  # one id, 3 sources
    a, _, _ = verified_pairs(con, CONFIG, None)
    assert 0 < len(a) < len(pairs)  # some candidates fail verification
    con.close()


def test_clusters_do_not_depend_on_the_number_of_partitions(
    tmp_path: Path, files: tuple[list[Path], list[Path]]
) -> None:
    members = []
    for partition_rows in (None, 400):
        con = _run(tmp_path / str(partition_rows), files, partition_rows)
        a, b, _ = verified_pairs(con, CONFIG, None)
        members.append(choose_keepers(con, a, b, CONFIG).members)
        con.close()
    assert members[0].num_rows > 100
    assert members[0].equals(members[1])

"""Boilerplate lines and paragraphs, CCNet style: the global side (count, decide), in DuckDB.

Every shard wrote one row per countable unit of each kept document to `_dedup/paragraphs/` (see
:mod:`curate.dedup.paragraphs`). After the document-level clusters are known, DuckDB counts for each
unit hash the distinct documents that hold it, over every shard of the run plus, with `dedup.index`,
every earlier run in the index (as pinned by the phase). A hash held by `min_docs` documents or more is
boilerplate and is removed from every document of this run that holds it; documents of earlier runs are
already emitted and stay as they are. The counting is a group-by on a database file with a memory cap
(spilling to disk), never a dictionary in Python, on the local and the Ray executor alike.

Why after the document-level decisions and not before them, as CCNet does: CCNet has no document-level
dedup, its paragraph pass *is* its dedup (an exact copy of a page loses every paragraph, in both copies).
Here copies are first resolved as whole documents, and only the survivors are counted, so a document's
own copies never make its content look like boilerplate; the sketches stay the per-shard ones (stripping
first would need a second pass over all text to sketch the stripped documents again). The cost: two
documents that differ only in their boilerplate are found as near duplicates (MinHash over their whole
text) rather than as exact ones.

The decision for each document (which hashes go, how many units and characters that removes, whether
too little text is left) is a function of the unit rows alone, so a resumed phase decides the same and
the counts do not depend on which parts were already rewritten before a crash.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from curate.dedup.cluster import sql_list
from curate.dedup.paragraphs import HASH_VERSION
from curate.dedup.settings import ParagraphConfig
from curate.storage import Location

DECISIONS = "paragraphs.parquet"  # per stripped document: id, source, domain, hashes, units, chars, reject
RUN_COUNTS = "paragraph_counts.parquet"  # hash -> documents of this run, for the persistent index
BOILERPLATE_ONLY = "boilerplate_only"


def index_folder(index: Location, config: ParagraphConfig) -> Location:
    """Index segments of unit counts, one folder per unit kind and hash version (others never mix)."""
    return index / f"paragraphs-{config.unit}-v{HASH_VERSION}"


def find_boilerplate(
    con: duckdb.DuckDBPyConnection,
    unit_files: list[Location],
    removed: pa.Table,
    earlier_counts: list[Location],
    config: ParagraphConfig,
    state: Path,
    keep_run_counts: bool,
) -> dict[str, int]:
    """Write `state/paragraphs.parquet` (and `state/paragraph_counts.parquet` when asked); return stats.

    `removed` holds (id, source) of the documents the document-level dedup removes: they are not counted.
    """
    empty = {"boilerplate_paragraphs": 0, "paragraph_docs": 0, "paragraphs_removed": 0}
    empty |= {"paragraph_chars_removed": 0, "boilerplate_only": 0}
    con.register("removed_docs", removed.select(["id", "source"]))
    source = (
        f"read_parquet({sql_list(unit_files)})"
        if unit_files
        else "(SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS source, NULL::VARCHAR AS domain, "
        "NULL::UBIGINT AS hash, NULL::INTEGER AS chars, NULL::BIGINT AS doc_chars WHERE false)"
    )
    con.execute(
        "CREATE TABLE units AS SELECT u.id, u.source, u.domain, u.hash, u.chars, u.doc_chars "
        f"FROM {source} u ANTI JOIN removed_docs r ON u.id = r.id AND u.source = r.source"
    )
    con.unregister("removed_docs")
    con.execute(
        "CREATE TABLE run_counts AS SELECT hash, count(*) AS docs "
        "FROM (SELECT DISTINCT hash, id, source FROM units) GROUP BY hash"
    )
    earlier = (
        f" UNION ALL SELECT e.hash, e.docs FROM read_parquet({sql_list(earlier_counts)}) e "
        "SEMI JOIN run_counts c ON e.hash = c.hash"
        if earlier_counts
        else ""
    )
    con.execute(
        "CREATE TABLE boilerplate AS SELECT hash, sum(docs) AS docs "
        f"FROM (SELECT hash, docs FROM run_counts{earlier}) GROUP BY hash HAVING sum(docs) >= ?",
        [config.min_docs],
    )
    con.execute(
        "CREATE TABLE decisions AS SELECT u.id, u.source, any_value(u.domain) AS domain, "
        "list_sort(list_distinct(list(u.hash))) AS hashes, count(*) AS units, sum(u.chars)::BIGINT AS chars, "
        "any_value(u.doc_chars) - sum(u.chars)::BIGINT AS chars_left, "
        "any_value(u.doc_chars) - sum(u.chars)::BIGINT < ? AS rejected "
        "FROM units u SEMI JOIN boilerplate b ON u.hash = b.hash GROUP BY u.id, u.source",
        [config.min_chars_left],
    )
    con.execute(f"COPY (SELECT * FROM decisions ORDER BY source, id) TO '{_quoted(state / DECISIONS)}'")
    if keep_run_counts:
        con.execute(f"COPY (SELECT * FROM run_counts ORDER BY hash) TO '{_quoted(state / RUN_COUNTS)}'")
    row = con.execute(
        "SELECT (SELECT count(*) FROM boilerplate), "
        "count(*) FILTER (WHERE NOT rejected), sum(units) FILTER (WHERE NOT rejected), "
        "sum(chars) FILTER (WHERE NOT rejected), count(*) FILTER (WHERE rejected) FROM decisions"
    ).fetchone()
    assert row is not None
    return {key: int(value or 0) for key, value in zip(empty, row, strict=True)}


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


class Decisions:
    """Reads `state/paragraphs.parquet` back, a (source, domain) at a time, through one connection."""

    def __init__(self, state: Path) -> None:
        self.path = state / DECISIONS
        self.con = duckdb.connect()
        self.con.execute("SET enable_progress_bar = false")
        self.files = f"read_parquet('{_quoted(self.path)}')"

    def parts(self) -> list[tuple[str, str]]:
        """(source, domain) of every stripped or rejected document."""
        if not self.path.exists():
            return []
        rows = self.con.execute(
            f"SELECT DISTINCT source, domain FROM {self.files} ORDER BY source, domain"
        ).fetchall()
        return [(source, domain) for source, domain in rows]

    def of(self, source: str, domain: str) -> pa.Table:
        return self.con.sql(
            f"SELECT * FROM {self.files} WHERE source = ? AND domain = ? ORDER BY id", params=[source, domain]
        ).to_arrow_table()

    def rejected(self) -> pa.Table:
        """(id, source) of the documents rejected as boilerplate only."""
        if not self.path.exists():
            return pa.table({"id": pa.array([], pa.string()), "source": pa.array([], pa.string())})
        return self.con.sql(
            f"SELECT id, source FROM {self.files} WHERE rejected ORDER BY source, id"
        ).to_arrow_table()

    def close(self) -> None:
        self.con.close()

"""Global clustering: band keys -> candidate pairs -> verified pairs -> connected components -> keepers.

All of it runs in DuckDB on a database file with a memory cap, so a corpus whose sketches do not fit in
memory spills to disk instead of failing; Python only sees the candidate pairs, a small fraction of docs.
Candidate pairs are stars (each member of a bucket to the bucket's smallest document), which keeps
their number linear in the bucket size instead of quadratic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from curate.dedup.settings import DedupConfig
from curate.storage import Location, register_filesystems

PAIR_CHUNK = 50_000
DEDUP_REJECTS_PREFIX = "dedup-"  # rejects/dedup-<domain>-<part>.parquet, written by apply


@dataclass
class Clusters:
    """Every non-index document that is in a cluster: its cluster (the keeper's id) and its fate."""

    members: pa.Table  # id, source, domain, cluster, keeper (bool), reason (null for keepers), similarity


def sql_list(paths: list[Location]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def open_work_db(path: Path, config: DedupConfig) -> duckdb.DuckDBPyConnection:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    con.execute("SET enable_progress_bar = false")  # no DuckDB bar inside `curate run`'s output
    con.execute(f"SET memory_limit = '{_safe_size(config.memory_limit)}'")
    con.execute("SET temp_directory = ?", [str(path.parent / "spill")])
    con.execute("SET preserve_insertion_order = false")
    return con


def _safe_size(value: str) -> str:
    if not value.replace(" ", "").rstrip("KMGTBkmgtib").replace(".", "").isdigit():
        raise ValueError(f"memory_limit {value!r} is not a size such as 2GB")
    return value


def load_docs(
    con: duckdb.DuckDBPyConnection, sketches: list[Location], index_segments: list[Location]
) -> int:
    """One table of every document, this run's and the index's; index documents sort first and win."""
    parts = (
        [
            "SELECT id, source, domain, n_chars, crawl_date, quality, exact_hash, bands, signature, "
            f"false AS is_index FROM read_parquet({sql_list(sketches)})"
        ]
        if sketches
        else []
    )
    if index_segments:
        parts.append(
            "SELECT id, NULL AS source, NULL AS domain, n_chars, crawl_date, quality, exact_hash, "
            f"bands, signature, true AS is_index FROM read_parquet({sql_list(index_segments)})"
        )
    if not parts:
        return 0
    con.execute(
        "CREATE TABLE docs AS SELECT row_number() OVER (ORDER BY is_index DESC, id, source) - 1 AS doc, * "
        f"FROM ({' UNION ALL '.join(parts)})"
    )
    return con.execute("SELECT count(*) FROM docs").fetchall()[0][0]


def candidate_pairs(con: duckdb.DuckDBPyConnection, config: DedupConfig) -> None:
    """Table `pairs(a, b, exact)`: a is in a bucket whose smallest document is b (a > b)."""
    queries = []
    if config.exact:
        queries.append(
            "SELECT doc AS a, min(doc) OVER (PARTITION BY exact_hash) AS b, true AS exact FROM docs"
        )
    if config.near:
        queries.append(
            "SELECT doc AS a, min(doc) OVER (PARTITION BY key) AS b, false AS exact "
            "FROM (SELECT doc, unnest(bands) AS key FROM docs WHERE bands IS NOT NULL)"
        )
    union = " UNION ALL ".join(queries) if queries else "SELECT 0 AS a, 0 AS b, false AS exact WHERE false"
    con.execute(
        f"CREATE TABLE pairs AS SELECT a, b, bool_or(exact) AS exact FROM ({union}) "
        "WHERE a <> b GROUP BY a, b"
    )


def pairs_from_keys(con: duckdb.DuckDBPyConnection, keyed: pa.Table) -> None:
    """Table `pairs(a, b, exact)` from pairs named by (id, source, is_index), as Ray's shuffle gives them."""
    con.register("keyed_pairs", keyed)
    same = "{d}.id = k.{s}_id AND {d}.source IS NOT DISTINCT FROM k.{s}_source AND {d}.is_index = k.{s}_index"
    con.execute(
        "CREATE TABLE pairs AS SELECT da.doc AS a, db.doc AS b, bool_or(k.exact) AS exact FROM keyed_pairs k "
        f"JOIN docs da ON {same.format(d='da', s='a')} JOIN docs db ON {same.format(d='db', s='b')} "
        "WHERE da.doc <> db.doc GROUP BY da.doc, db.doc"
    )
    con.unregister("keyed_pairs")


def verified_pairs(
    con: duckdb.DuckDBPyConnection, config: DedupConfig, texts: TextLookup | None, table: str = "pairs"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, similarity) of the pairs in `table` that pass verification; exact pairs pass with 1."""
    cursor = con.sql(
        "SELECT p.a, p.b, p.exact, da.signature AS sa, db.signature AS sb, da.id AS ida, da.source AS srca, "
        f"db.id AS idb, db.source AS srcb, db.is_index AS b_index FROM {table} p "
        "JOIN docs da ON da.doc = p.a JOIN docs db ON db.doc = p.b ORDER BY p.a, p.b"
    )
    keep_a, keep_b, keep_s = [], [], []
    reader = cursor.to_arrow_reader(PAIR_CHUNK)
    for batch in reader:
        a, b, similarity = _verify_batch(batch, config, texts)
        keep_a.append(a)
        keep_b.append(b)
        keep_s.append(similarity)
    if not keep_a:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    return np.concatenate(keep_a), np.concatenate(keep_b), np.concatenate(keep_s)


def _verify_batch(
    batch: pa.RecordBatch, config: DedupConfig, texts: TextLookup | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = batch.column("a").to_numpy()
    b = batch.column("b").to_numpy()
    exact = batch.column("exact").to_numpy(zero_copy_only=False)
    similarity = np.ones(len(a))
    if config.verify == "none":
        return a, b, similarity
    near = ~exact
    similarity[near] = _signature_similarity(batch.column("sa"), batch.column("sb"), config.num_perm)[near]
    if config.verify == "exact" and texts is not None:
        b_index = batch.column("b_index").to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(near & ~b_index)
        left = list(
            zip(
                batch.column("ida").take(rows).to_pylist(),
                batch.column("srca").take(rows).to_pylist(),
                strict=True,
            )
        )
        right = list(
            zip(
                batch.column("idb").take(rows).to_pylist(),
                batch.column("srcb").take(rows).to_pylist(),
                strict=True,
            )
        )
        texts.prefetch(left + right)
        for i, l_key, r_key in zip(rows, left, right, strict=True):
            similarity[i] = texts.jaccard(l_key, r_key)
    keep = exact | (similarity >= config.threshold)
    return a[keep], b[keep], similarity[keep]


def _signature_similarity(left: pa.Array, right: pa.Array, num_perm: int) -> np.ndarray:
    sa = np.frombuffer(b"".join(left.to_pylist()), dtype=np.uint32).reshape(-1, num_perm)
    sb = np.frombuffer(b"".join(right.to_pylist()), dtype=np.uint32).reshape(-1, num_perm)
    return (sa == sb).mean(axis=1)


def components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(doc, component) for every document on a verified edge; union-find via scipy's csgraph."""
    nodes, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    n = len(nodes)
    ia, ib = inverse[: len(a)], inverse[len(a) :]
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (ia, ib)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return nodes, labels


def choose_keepers(
    con: duckdb.DuckDBPyConnection,
    a: np.ndarray,
    b: np.ndarray,
    config: DedupConfig,
    texts: TextLookup | None = None,
) -> Clusters:
    """Clusters from verified edges (a, b): every removed document is within `threshold` of its keeper.

    In each connected component the keep policy picks the keeper; the other members are compared with
    the keeper directly (exact hash, else as `verify` says) and those at >= threshold become its
    duplicates. Members below it are not dropped on the strength of a chain (A~B, B~C does not make C a
    copy of A): they are clustered again on the edges among themselves, until no edge is left. So no
    two kept documents share a verified edge, and each reject names a keeper it really resembles.
    With `verify: none` there is nothing to compare, and a component is a cluster as a whole.
    """
    order = ", ".join(["d.is_index DESC"] + [_ORDER[rule] for rule in config.keep] + ["d.id", "d.source"])
    assigned: list[pa.Table] = []
    while len(a):
        nodes, labels = components(a, b)
        con.register("members_arrow", pa.table({"doc": nodes, "component": labels}))
        con.execute(
            "CREATE OR REPLACE TABLE ranked AS SELECT m.doc, m.component, "
            f"row_number() OVER (PARTITION BY m.component ORDER BY {order}) AS rank "
            "FROM members_arrow m JOIN docs d ON d.doc = m.doc"
        )
        con.unregister("members_arrow")
        con.execute(
            "CREATE OR REPLACE TABLE keeper_pairs AS SELECT r.doc AS a, k.doc AS b, "
            "dr.exact_hash = dk.exact_hash AS exact FROM ranked r "
            "JOIN ranked k ON k.component = r.component AND k.rank = 1 "
            "JOIN docs dr ON dr.doc = r.doc JOIN docs dk ON dk.doc = k.doc WHERE r.rank > 1"
        )
        doc, keeper, similarity = verified_pairs(con, config, texts, table="keeper_pairs")
        keepers = np.unique(keeper)
        assigned.append(
            pa.table(
                {
                    "doc": np.concatenate([keepers, doc]),
                    "keeper_doc": np.concatenate([keepers, keeper]),
                    "similarity": np.concatenate([np.ones(len(keepers)), similarity]),
                }
            )
        )
        settled = np.concatenate([keepers, doc])
        first = con.execute("SELECT doc FROM ranked WHERE rank = 1").fetchnumpy()["doc"]
        gone = np.union1d(settled, first)
        residual = ~np.isin(a, gone) & ~np.isin(b, gone)
        a, b = a[residual], b[residual]
    if not assigned:
        assigned.append(
            pa.table(
                {
                    "doc": pa.array([], pa.int64()),
                    "keeper_doc": pa.array([], pa.int64()),
                    "similarity": pa.array([], pa.float64()),
                }
            )
        )
    con.register("assigned_arrow", pa.concat_tables(assigned))
    table = con.sql(
        "SELECT d.id, d.source, d.domain, k.id AS cluster, m.doc = m.keeper_doc AS keeper, "
        "CASE WHEN m.doc = m.keeper_doc THEN NULL WHEN d.exact_hash = k.exact_hash THEN 'exact_duplicate' "
        "ELSE 'near_duplicate' END AS reason, m.similarity "
        "FROM assigned_arrow m JOIN docs d ON d.doc = m.doc JOIN docs k ON k.doc = m.keeper_doc "
        "WHERE NOT d.is_index ORDER BY d.source, d.id"
    ).to_arrow_table()
    con.unregister("assigned_arrow")
    return Clusters(table)


_ORDER = {
    "quality": "d.quality DESC NULLS LAST",
    "longest": "d.n_chars DESC",
    "oldest": "d.crawl_date ASC NULLS LAST",
}


class TextLookup:
    """Shingle sets of candidate documents, read from the corpus parts in one query per pair chunk."""

    def __init__(self, corpus_dir: Location, config: DedupConfig) -> None:
        from curate.dedup.sketch import hasher_for

        self.corpus_dir = corpus_dir
        self.rejects_dir = corpus_dir.parent / "rejects"
        self.hasher = hasher_for(config)
        self.con = duckdb.connect()
        self.con.execute("SET enable_progress_bar = false")
        self.shingles: dict[tuple[str, str], np.ndarray] = {}

    def prefetch(self, keys: list[tuple[str, str]]) -> None:
        from curate.dedup.shingles import shingle_hashes

        self.shingles.clear()  # only the current chunk's documents are kept: memory stays bounded
        wanted = sorted(set(keys))
        if not wanted:
            return
        self.con.register(
            "wanted", pa.table({"id": [k[0] for k in wanted], "source": [k[1] for k in wanted]})
        )
        # A resumed phase finds some duplicates already moved to rejects/dedup-*: read them there too
        # (a crash between writing those rejects and rewriting the part leaves a row in both).
        parts = [*self.corpus_dir.glob("*/*.parquet"), *self.rejects_dir.glob(f"{DEDUP_REJECTS_PREFIX}*")]
        files = sorted((p for p in parts if p.is_file() and p.suffix == ".parquet"), key=str)
        if not files:
            return
        register_filesystems(self.con, files)
        rows = self.con.execute(
            "SELECT DISTINCT ON (c.id, c.source) c.id, c.source, c.text "
            f"FROM read_parquet({sql_list(files)}, hive_partitioning=false, union_by_name=true) c "
            "JOIN wanted w ON c.id = w.id AND c.source = w.source"
        ).fetchall()
        self.con.unregister("wanted")
        batch = shingle_hashes([r[2] for r in rows], self.hasher.ngram, self.hasher.seed)
        for i, (doc_id, source, _) in enumerate(rows):
            hashes = batch.hashes[batch.offsets[i] : batch.offsets[i + 1]]
            self.shingles[(doc_id, source)] = np.unique(hashes)

    def jaccard(self, left: tuple[str, str], right: tuple[str, str]) -> float:
        sa, sb = self.shingles.get(left), self.shingles.get(right)
        if sa is None or sb is None:
            return 0.0
        shared = len(np.intersect1d(sa, sb, assume_unique=True))  # both are sets: no union1d sort needed
        union = len(sa) + len(sb) - shared
        return shared / union if union else 1.0

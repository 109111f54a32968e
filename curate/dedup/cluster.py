"""Global clustering: band keys -> candidate pairs -> verified pairs -> connected components -> keepers.

All of it runs in DuckDB on a database file with a memory cap, so a corpus whose sketches do not fit in
memory spills to disk instead of failing; Python only sees the candidate pairs, a small fraction of docs.
Candidate pairs are stars (each member of a bucket to the bucket's smallest document), which keeps
their number linear in the bucket size instead of quadratic.

Every step is linear in the documents: nothing wide is ever sorted (only the document keys, to number the
documents), and the band keys (`bands` rows per document, the bulk of the work) are grouped one hash
partition at a time, each sized to fit in memory, instead of in one window over all of them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from curate.dedup.settings import DedupConfig
from curate.storage import Location, read_parquet_metadata, register_filesystems

PAIR_CHUNK = 50_000
DEDUP_REJECTS_PREFIX = "dedup-"  # rejects/dedup-<domain>-<part>.parquet, written by apply


@dataclass
class Clusters:
    """Every non-index document that is in a cluster: its cluster (the keeper's id) and its fate."""

    members: pa.Table  # id, source, domain, cluster, keeper (bool), reason (null for keepers), similarity


def sql_list(paths: list[Location] | list[str]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def open_work_db(path: Path, config: DedupConfig) -> duckdb.DuckDBPyConnection:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    con.execute("SET enable_progress_bar = false")  # no DuckDB bar inside `curate run`'s output
    con.execute(f"SET memory_limit = '{duckdb_share(config.memory_limit)}B'")
    con.execute("SET temp_directory = ?", [str(path.parent / "spill")])
    con.execute("SET preserve_insertion_order = false")
    return con


# DuckDB's share of `memory_limit`: its buffers fill up to their cap on a large corpus, and the rest is for
# what Python holds beside them (a chunk of pairs with their signatures, the clusters), so the phase as a
# whole stays within `memory_limit` above its imports.
DUCKDB_SHARE = 0.7


def duckdb_share(memory_limit: str) -> int:
    return int(_size_bytes(memory_limit) * DUCKDB_SHARE)


def _safe_size(value: str) -> str:
    if not value.replace(" ", "").rstrip("KMGTBkmgtib").replace(".", "").isdigit():
        raise ValueError(f"memory_limit {value!r} is not a size such as 2GB")
    return value


def load_docs(
    con: duckdb.DuckDBPyConnection, sketches: list[Location], index_segments: list[Location]
) -> int:
    """One table of every document, this run's and the index's; index documents sort first and win.

    `doc` is a document's place in the order (index first, id, source), so a bucket's smallest `doc` is
    the centre of its star. Only the narrow keys are sorted (table `doc_order`, by `row`: the file's
    first row plus the row in the file); the wide columns are then joined on by row, never sorted. Band
    keys stay in the sketch files (`doc_files` names them): `candidate_pairs` reads them from there.
    """
    files = [(p, True) for p in index_segments] + [(p, False) for p in sketches]
    if not files:
        return 0
    rows = [read_parquet_metadata(path).num_rows for path, _ in files]
    con.register(
        "doc_files_arrow",
        pa.table(
            {
                "path": [str(path) for path, _ in files],
                "first_row": np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(np.int64),
                "is_index": [is_index for _, is_index in files],
            }
        ),
    )
    con.execute("CREATE TABLE doc_files AS SELECT * FROM doc_files_arrow")
    con.unregister("doc_files_arrow")
    con.execute(
        "CREATE TABLE doc_order AS SELECT row, row_number() OVER (ORDER BY is_index DESC, id, source) - 1 "
        f"AS doc FROM ({_file_rows(con, ['id', 'source'])})"
    )
    con.execute(
        "CREATE TABLE docs AS SELECT o.doc, s.* EXCLUDE (row) "
        f"FROM ({_file_rows(con, DOC_COLUMNS)}) s JOIN doc_order o USING (row)"
    )
    count = con.execute("SELECT count(*) FROM docs").fetchall()[0][0]
    if count != sum(rows):  # a file DuckDB names otherwise than we do would lose its rows in the join
        raise RuntimeError(f"dedup read {count} of the {sum(rows)} documents in the sketch files")
    return count


DOC_COLUMNS = ["id", "source", "domain", "n_chars", "crawl_date", "quality", "exact_hash", "signature"]
_INDEX_NULLS = {"source", "domain"}  # index segments keep no location: they are never output


def _file_rows(con: duckdb.DuckDBPyConnection, columns: list[str]) -> str:
    """SQL of (row, *columns, is_index) over every file `load_docs` registered."""
    files = con.execute("SELECT path, is_index FROM doc_files ORDER BY first_row").fetchall()
    parts = []
    for is_index in (True, False):
        paths = [path for path, ix in files if ix == is_index]
        if not paths:
            continue
        selected = ", ".join(
            f"NULL::VARCHAR AS {c}" if is_index and c in _INDEX_NULLS else f"s.{c}" for c in columns
        )
        parts.append(
            f"SELECT f.first_row + s.file_row_number AS row, {selected}, f.is_index "
            f"FROM read_parquet({sql_list(paths)}, filename=true, file_row_number=true) s "
            "JOIN doc_files f ON f.path = s.filename"
        )
    return " UNION ALL ".join(parts)


# Bytes a bucket row costs while one partition is grouped (key, doc, the aggregate's hash table entry):
# partitions are sized so that this, over the rows of one, stays within half of DuckDB's memory.
BUCKET_ROW_BYTES = 64


def candidate_pairs(
    con: duckdb.DuckDBPyConnection, config: DedupConfig, partition_rows: int | None = None
) -> None:
    """Table `pairs(a, b, exact)`: a is in a bucket whose smallest document is b (a > b).

    A bucket is an exact hash or a band key. The (doc, key) rows are written once into files split by
    the key's hash, each small enough for memory (`partition_rows` rows, by default from
    `memory_limit`); each part then finds its buckets with a GROUP BY, so the work grows linearly with
    the documents and never spills, where one window over all rows sorted them all.
    """
    con.execute("CREATE TABLE star_pairs (a BIGINT, b BIGINT, exact BOOLEAN)")
    documents = con.execute("SELECT count(*) FROM docs").fetchall()[0][0]
    per_part = partition_rows or max(1, duckdb_share(config.memory_limit) // 2 // BUCKET_ROW_BYTES)
    folder = Path(con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]) / "buckets"
    if config.exact:
        _add_star_pairs(con, "s.exact_hash", True, max(1, -(-documents // per_part)), folder / "exact")
    if config.near:
        rows = documents * config.bands
        _add_star_pairs(con, "unnest(s.bands)", False, max(1, -(-rows // per_part)), folder / "near")
    con.execute("CREATE TABLE pairs AS SELECT a, b, bool_or(exact) AS exact FROM star_pairs GROUP BY a, b")
    con.execute("DROP TABLE star_pairs")


def _add_star_pairs(
    con: duckdb.DuckDBPyConnection, key: str, exact: bool, partitions: int, folder: Path
) -> None:
    """Star pairs of every bucket of `key` into `star_pairs`, one hash partition at a time."""
    column = "exact_hash" if exact else "bands"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    con.execute(
        f"COPY (SELECT o.doc, k.key, hash(k.key) % {partitions} AS part FROM "
        f"(SELECT s.row, {key} AS key FROM ({_file_rows(con, [column])}) s) k JOIN doc_order o USING (row)) "
        f"TO '{_quoted(folder)}' (FORMAT parquet, PARTITION_BY (part), COMPRESSION uncompressed)"
    )
    for part in sorted(folder.glob("part=*")):
        con.execute(
            "CREATE OR REPLACE TEMP TABLE bucket_rows AS "
            f"SELECT doc, key FROM read_parquet('{_quoted(part)}/*.parquet')"
        )
        con.execute(
            "INSERT INTO star_pairs SELECT r.doc, h.b, ? FROM bucket_rows r JOIN "
            "(SELECT key, min(doc) AS b FROM bucket_rows GROUP BY key HAVING count(*) > 1) h USING (key) "
            "WHERE r.doc <> h.b",
            [exact],
        )
        shutil.rmtree(part)
    con.execute("DROP TABLE IF EXISTS bucket_rows")
    shutil.rmtree(folder, ignore_errors=True)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _size_bytes(value: str) -> int:
    """Bytes of a DuckDB size such as 2GB, 512MB or 1.5GiB (decimal units, binary with an i)."""
    text = _safe_size(value).replace(" ", "").upper().removesuffix("B")
    binary = text.endswith("I")
    text = text.removesuffix("I")
    unit = text[-1] if text and text[-1] in "KMGT" else ""
    number = float(text[: len(text) - len(unit)])
    return int(number * (1024 if binary else 1000) ** ("_KMGT".index(unit) if unit else 0))


def verified_pairs(
    con: duckdb.DuckDBPyConnection, config: DedupConfig, texts: TextLookup | None, table: str = "pairs"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, similarity) of the pairs in `table` that pass verification; exact pairs pass with 1.

    In no particular order: each pair is verified on its own, and sorting them (with their signatures)
    would be the one step here that is more than linear."""
    cursor = con.sql(
        "SELECT p.a, p.b, p.exact, da.signature AS sa, db.signature AS sb, da.id AS ida, da.source AS srca, "
        f"db.id AS idb, db.source AS srcb, db.is_index AS b_index FROM {table} p "
        "JOIN docs da ON da.doc = p.a JOIN docs db ON db.doc = p.b"
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
    return (_signature_rows(left, num_perm) == _signature_rows(right, num_perm)).mean(axis=1)


def _signature_rows(signatures: pa.Array, num_perm: int) -> np.ndarray:
    """(rows, num_perm) uint32 view of a binary column of signatures, read from its data buffer in place
    (no Python bytes per row: this runs once per candidate pair)."""
    if signatures.null_count or len(signatures) == 0:
        return np.frombuffer(b"".join(signatures.to_pylist()), dtype=np.uint32).reshape(-1, num_perm)
    array = signatures.cast(pa.binary()) if signatures.type != pa.binary() else signatures
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data.view(np.uint32).reshape(-1, num_perm)


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

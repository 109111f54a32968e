"""Candidate pairs on Ray: a shuffle of (bucket, document) rows by bucket key across the cluster.

Used by the Ray path of the global dedup phase (:mod:`curate.dedup.ray_global`). Every document emits
one row per band key (and one for its exact hash), Ray Data groups the rows by key across workers, and
each group emits star pairs (each member to the group's first document), exactly the pairs the DuckDB
path makes with `min(doc) OVER (PARTITION BY key)`.

A document is named by one string, its *node*: a flag (index documents first), its id, source and
domain, NUL between them. Sorting nodes as strings sorts documents as the DuckDB path numbers them
(`is_index DESC, id, source`), so "the bucket's smallest document" is the smallest node, and the node
alone says where the document's text lives (for `verify: exact`) without a join. Index documents have
no source; their node carries the segment's run instead of a domain, so two runs' copies of an id stay
two documents, as they are in DuckDB.

The signature travels with each bucket row, so a pair's signature similarity is computed in the group
that finds it, without a join against the sketches. That costs shuffle volume (bands x signature bytes
per document) and saves two shuffles of every sketch; the pairs are then deduplicated by (a, b).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.storage import location, read_parquet

SEP = "\x00"
INDEX_FLAG, RUN_FLAG = "0", "1"  # index documents sort first and win as keepers

NODE_SCHEMA = pa.schema(
    [
        pa.field("node", pa.string()),
        pa.field("is_index", pa.bool_()),
        pa.field("n_chars", pa.int64()),
        pa.field("crawl_date", pa.int64()),  # microseconds; only compared
        pa.field("quality", pa.float64()),
        pa.field("exact_hash", pa.binary()),
        pa.field("bands", pa.list_(pa.uint64())),
        pa.field("signature", pa.binary()),
    ]
)
BUCKET_SCHEMA = pa.schema(
    [
        pa.field("key", pa.binary()),
        pa.field("exact", pa.bool_()),
        pa.field("node", pa.string()),
        pa.field("signature", pa.binary()),
    ]
)
PAIR_SCHEMA = pa.schema(
    [
        pa.field("a", pa.string()),
        pa.field("b", pa.string()),
        pa.field("exact", pa.bool_()),
        pa.field("similarity", pa.float64()),  # signature similarity; 1 for a pair found by its exact hash
    ]
)


def parse_node(node: str) -> tuple[bool, str, str, str]:
    """(is_index, id, source, domain); for an index document: (True, id, "", segment run)."""
    flag, doc_id, source, domain = node.split(SEP)
    return flag == INDEX_FLAG, doc_id, source, domain


def read_nodes(path: str, is_index: bool) -> pa.Table:
    """One sketch file (or index segment) as node rows."""
    sketch = read_parquet(location(path))
    if is_index:
        segment = path.rsplit("/", 1)[-1].removesuffix(".parquet")
        parts = [pa.scalar(INDEX_FLAG), sketch.column("id"), pa.scalar(""), pa.scalar(segment)]
    else:
        parts = [pa.scalar(RUN_FLAG), sketch.column("id"), sketch.column("source"), sketch.column("domain")]
    if any(_holds_separator(column) for column in parts[1:]):
        raise ValueError(f"{path}: an id, source or domain holds a NUL character")
    nodes = pc.binary_join_element_wise(*parts, SEP)
    columns = {
        "node": nodes,
        "is_index": pa.array(np.full(sketch.num_rows, is_index)),
        "n_chars": sketch.column("n_chars"),
        "crawl_date": pc.cast(sketch.column("crawl_date"), pa.int64()),
        "quality": sketch.column("quality"),
        "exact_hash": sketch.column("exact_hash").cast(pa.binary()),
        "bands": sketch.column("bands"),
        "signature": sketch.column("signature"),
    }
    return pa.table(columns, schema=NODE_SCHEMA)


def _holds_separator(column: pa.Scalar | pa.ChunkedArray) -> bool:
    """A NUL inside a name would make two documents one node (or break parse_node)."""
    if isinstance(column, pa.Scalar):
        return SEP in column.as_py()
    return bool(pc.any(pc.match_substring(column, SEP)).as_py())


def bucket_rows(nodes: pa.Table, exact: bool, near: bool) -> pa.Table:
    """One row per (document, bucket): its exact hash and each of its band keys, as binary keys."""
    keys, rows, kinds = [], [], []
    if exact:
        keys.append(
            pc.binary_join_element_wise(pa.scalar(b"e"), nodes.column("exact_hash"), b"").combine_chunks()
        )
        rows.append(np.arange(nodes.num_rows))
        kinds.append(np.ones(nodes.num_rows, dtype=bool))
    if near:
        bands = nodes.column("bands").combine_chunks()
        lengths = pc.fill_null(pc.list_value_length(bands), 0).to_numpy()
        flat = pc.list_flatten(bands).to_numpy(zero_copy_only=False).astype("<u8")
        raw = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(8), len(flat), [None, pa.py_buffer(flat.tobytes())]
        )
        keys.append(pc.binary_join_element_wise(pa.scalar(b"b"), raw.cast(pa.binary()), b""))
        rows.append(np.repeat(np.arange(nodes.num_rows), lengths))
        kinds.append(np.zeros(len(flat), dtype=bool))
    if not keys:
        return BUCKET_SCHEMA.empty_table()
    take = pa.array(np.concatenate(rows), pa.int64())
    return pa.table(
        {
            "key": pa.concat_arrays(keys),
            "exact": pa.array(np.concatenate(kinds)),
            "node": nodes.column("node").take(take),
            "signature": nodes.column("signature").take(take),
        },
        schema=BUCKET_SCHEMA,
    )


def star_pairs(group: pa.Table, num_perm: int) -> pa.Table:
    """Each member of a bucket paired with the bucket's smallest node, with their signature similarity."""
    signatures = dict(
        zip(group.column("node").to_pylist(), group.column("signature").to_pylist(), strict=True)
    )
    if len(signatures) < 2:
        return PAIR_SCHEMA.empty_table()
    head, *rest = sorted(signatures)
    exact = bool(group.column("exact")[0].as_py())
    if exact:
        similarity = np.ones(len(rest))
    else:
        mine = np.frombuffer(b"".join(signatures[n] for n in rest), dtype=np.uint32).reshape(-1, num_perm)
        similarity = (mine == np.frombuffer(signatures[head], dtype=np.uint32)).mean(axis=1)
    return pa.table(
        {"a": rest, "b": [head] * len(rest), "exact": [exact] * len(rest), "similarity": similarity},
        schema=PAIR_SCHEMA,
    )

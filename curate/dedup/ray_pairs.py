"""Candidate pairs on Ray: a shuffle of (bucket, document) rows by bucket key across the cluster.

The Ray executor's dedup phase finds candidate pairs this way instead of in one DuckDB process: every
document emits one row per band key (and one for its exact hash), Ray Data groups the rows by key across
workers, and each group emits star pairs (each member to the group's first document in the same order
the DuckDB path uses), so both paths produce the same pairs and therefore the same clusters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.dedup.settings import DedupConfig

PAIR_SCHEMA = pa.schema(
    [
        pa.field("a_id", pa.string()),
        pa.field("a_source", pa.string()),
        pa.field("a_index", pa.bool_()),
        pa.field("b_id", pa.string()),
        pa.field("b_source", pa.string()),
        pa.field("b_index", pa.bool_()),
        pa.field("exact", pa.bool_()),
    ]
)


def bucket_rows(batch: pa.Table, exact: bool, near: bool) -> pa.Table:
    """One row per (document, bucket): its exact hash and each of its band keys, as binary keys."""
    ids, sources, index = batch.column("id"), batch.column("source"), batch.column("is_index")
    keys, rows, kinds = [], [], []
    if exact:
        keys.append(
            pc.binary_join_element_wise(
                pa.scalar(b"e"), batch.column("exact_hash").cast(pa.binary()), pa.scalar(b"")
            )
        )
        rows.append(np.arange(batch.num_rows))
        kinds.append(np.ones(batch.num_rows, dtype=bool))
    if near:
        bands = batch.column("bands").combine_chunks()
        lengths = pc.fill_null(pc.list_value_length(bands), 0).to_numpy()
        flat = pc.list_flatten(bands).to_numpy(zero_copy_only=False).astype(np.uint64)
        keys.append(pa.array([b"b" + int(k).to_bytes(8, "little") for k in flat], pa.binary()))
        rows.append(np.repeat(np.arange(batch.num_rows), lengths))
        kinds.append(np.zeros(len(flat), dtype=bool))
    if not keys:
        return pa.table({"key": pa.array([], pa.binary())})
    take = pa.array(np.concatenate(rows))
    return pa.table(
        {
            "key": pa.concat_arrays(
                [k.combine_chunks() if isinstance(k, pa.ChunkedArray) else k for k in keys]
            ),
            "exact": pa.array(np.concatenate(kinds)),
            "id": ids.take(take),
            "source": sources.take(take),
            "is_index": index.take(take),
        }
    )


def star_pairs(group: pa.Table) -> pa.Table:
    """Each member of a bucket paired with the bucket's first document (index first, then id, source)."""
    if group.num_rows < 2:
        return PAIR_SCHEMA.empty_table()
    members = sorted(
        {
            (not ix, i, s or "", s, ix)
            for i, s, ix in zip(
                group.column("id").to_pylist(),
                group.column("source").to_pylist(),
                group.column("is_index").to_pylist(),
                strict=True,
            )
        }
    )
    exact = bool(group.column("exact")[0].as_py())
    head = members[0]
    rest = members[1:]
    return pa.table(
        {
            "a_id": [m[1] for m in rest],
            "a_source": [m[3] for m in rest],
            "a_index": [m[4] for m in rest],
            "b_id": [head[1]] * len(rest),
            "b_source": [head[3]] * len(rest),
            "b_index": [head[4]] * len(rest),
            "exact": [exact] * len(rest),
        },
        schema=PAIR_SCHEMA,
    )


def ray_candidate_pairs(sketches: list[Path], segments: list[Path], config: DedupConfig) -> pa.Table:
    """Files are read inside the workers (one task per file), so the driver never holds the sketches."""
    import ray.data

    files = [{"path": str(p), "is_index": False} for p in sketches]
    files += [{"path": str(p), "is_index": True} for p in segments]
    if not files:
        return PAIR_SCHEMA.empty_table()
    exact, near = config.exact, config.near
    buckets = ray.data.from_items(files, override_num_blocks=len(files)).map_batches(
        lambda batch: _read_buckets(batch, exact, near), batch_size=1, batch_format="pyarrow"
    )
    pairs = buckets.groupby("key").map_groups(star_pairs, batch_format="pyarrow")
    tables = [
        pa.Table.from_batches([b]) if isinstance(b, pa.RecordBatch) else b
        for b in pairs.iter_batches(batch_format="pyarrow")
    ]
    return pa.concat_tables([t.cast(PAIR_SCHEMA) for t in tables]) if tables else PAIR_SCHEMA.empty_table()


def _read_buckets(files: pa.Table, exact: bool, near: bool) -> pa.Table:
    tables = []
    for path, is_index in zip(
        files.column("path").to_pylist(), files.column("is_index").to_pylist(), strict=True
    ):
        sketch = pq.read_table(path, columns=["id", "exact_hash", "bands"] + ([] if is_index else ["source"]))
        if is_index:
            sketch = sketch.append_column("source", pa.nulls(sketch.num_rows, pa.string()))
        sketch = sketch.append_column("is_index", pa.array([is_index] * sketch.num_rows, pa.bool_()))
        tables.append(bucket_rows(sketch, exact, near))
    return pa.concat_tables(tables)

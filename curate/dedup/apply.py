"""Apply clusters to the corpus: duplicates move to rejects/, keepers get their `dup_cluster`.

Each affected part is handled on its own and idempotently: its duplicate rejects are written first (and
never rewritten once they exist, since they were taken from the original part), then the part is
replaced by its filtered version, then a marker says the part is done. Re-applying after a crash at any
point gives the same files as applying once.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.plan import shard_key
from curate.schema import conform
from curate.writer import temp_path, write_atomic

DEDUP_STAGE = "dedup"
APPLIED_DIR = "_state/dedup/applied"


def affected_parts(out: Path, members: pa.Table) -> dict[Path, pa.Table]:
    """Corpus part files holding cluster members, each with the members it holds."""
    by_part: dict[Path, pa.Table] = {}
    for source in sorted(set(members.column("source").to_pylist())):
        rows = members.filter(pc.equal(members.column("source"), source))
        for domain in sorted(set(rows.column("domain").to_pylist())):
            folder = out / "corpus" / f"domain={domain}"
            for part in sorted(folder.glob(f"part-{shard_key(source)}-*.parquet")):
                by_part[part] = rows.filter(pc.equal(rows.column("domain"), domain))
    return by_part


def apply_to_part(
    out: Path, part: Path, members: pa.Table, corpus_schema: pa.Schema, reject_schema: pa.Schema
) -> list[str]:
    marker = out / APPLIED_DIR / f"{part.parent.name}-{part.name}.done"
    rejects_path = out / "rejects" / f"dedup-{part.parent.name.removeprefix('domain=')}-{part.name}"
    if marker.exists():
        return [_relative(out, rejects_path)] if rejects_path.exists() else []
    table = pq.read_table(part, schema=corpus_schema)
    joined = _attach_members(table, members)
    removed = pc.is_valid(joined.column("reason"))
    if pc.any(removed).as_py() and not rejects_path.exists():
        _write(rejects_path, _as_rejects(joined.filter(removed)), reject_schema)
    keepers = joined.filter(pc.invert(removed))
    keepers = keepers.set_column(
        keepers.schema.get_field_index("dup_cluster"),
        "dup_cluster",
        pc.coalesce(keepers.column("cluster"), keepers.column("dup_cluster")),
    )
    _write(part, keepers, corpus_schema)
    write_atomic(marker, "done")
    return [_relative(out, rejects_path)] if rejects_path.exists() else []


def _attach_members(table: pa.Table, members: pa.Table) -> pa.Table:
    """Left-join cluster info by (id, source), keeping the part's row order exactly."""
    indexed = table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    info = members.select(["id", "source", "cluster", "reason", "similarity"])
    joined = indexed.join(info, keys=["id", "source"], join_type="left outer")
    return joined.sort_by("_row").drop_columns(["_row"])


def _as_rejects(removed: pa.Table) -> pa.Table:
    detail = pc.binary_join_element_wise(
        "duplicate of ",
        removed.column("cluster"),
        " (similarity ",
        pc.cast(pc.round(removed.column("similarity"), 3), pa.string()),
        ")",
        "",
    )
    removed = removed.set_column(
        removed.schema.get_field_index("dup_cluster"), "dup_cluster", removed.column("cluster")
    )
    return (
        removed.append_column("reject_reason", removed.column("reason"))
        .append_column("reject_stage", pa.array([DEDUP_STAGE] * removed.num_rows, pa.string()))
        .append_column("reject_detail", detail)
    )


def _write(path: Path, table: pa.Table, schema: pa.Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(conform(table, schema), temp_path(path), compression="zstd", row_group_size=100_000)
    temp_path(path).replace(path)


def _relative(out: Path, path: Path) -> str:
    return path.relative_to(out).as_posix()

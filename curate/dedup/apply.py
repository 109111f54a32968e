"""Apply clusters to the corpus: duplicates move to rejects/, keepers get their `dup_cluster`; with
paragraph dedup, documents lose their boilerplate units in the same pass (or move to rejects/ as
`boilerplate_only` when too little text is left).

Each affected part is handled on its own and idempotently: its duplicate rejects are written first (and
never rewritten once they exist, since they were taken from the original part), then the part is
replaced by its filtered version, then a marker says the part is done. Re-applying after a crash at any
point gives the same files as applying once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.dedup.boilerplate import BOILERPLATE_ONLY
from curate.dedup.paragraphs import REMOVED_CHARS, REMOVED_UNITS, strip_documents
from curate.dedup.settings import ParagraphConfig
from curate.plan import shard_key
from curate.schema import conform
from curate.storage import Location, files_under, read_parquet, relative, write_atomic, write_parquet

DEDUP_STAGE = "dedup"
APPLIED_DIR = "_state/dedup/applied"


@dataclass(frozen=True)
class Stripping:
    """The paragraph decisions for the documents of one (source, domain) (see boilerplate.Decisions)."""

    decisions: pa.Table  # id, source, domain, hashes, units, chars, chars_left, rejected
    config: ParagraphConfig


def affected_keys(members: pa.Table, extra: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """(source, domain) pairs holding a cluster member or a document `extra` names, sorted."""
    pairs = zip(members.column("source").to_pylist(), members.column("domain").to_pylist(), strict=True)
    return sorted(set(pairs) | set(extra))


def parts_of(out: Location, source: str, domain: str) -> list[Location]:
    folder = out / "corpus" / f"domain={domain}"
    return files_under(folder, f"part-{shard_key(source)}-*.parquet")


def members_of(members: pa.Table, source: str, domain: str) -> pa.Table:
    return members.filter(pc.and_(pc.equal(members["source"], source), pc.equal(members["domain"], domain)))


def apply_to_part(
    out: Location,
    part: Location,
    members: pa.Table,
    corpus_schema: pa.Schema,
    reject_schema: pa.Schema,
    stripping: Stripping | None = None,
) -> list[str]:
    marker = out / APPLIED_DIR / f"{part.parent.name}-{part.name}.done"
    rejects_path = out / "rejects" / f"dedup-{part.parent.name.removeprefix('domain=')}-{part.name}"
    if marker.exists():
        return [relative(rejects_path, out)] if rejects_path.exists() else []
    table = read_parquet(part, schema=corpus_schema)
    joined = _attach_members(table, members)
    if stripping is not None:
        joined = _strip(joined, stripping)
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
    return [relative(rejects_path, out)] if rejects_path.exists() else []


def _attach_members(table: pa.Table, members: pa.Table) -> pa.Table:
    """Left-join cluster info by (id, source), keeping the part's row order exactly."""
    indexed = table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    info = members.select(["id", "source", "cluster", "reason", "similarity"])
    joined = indexed.join(info, keys=["id", "source"], join_type="left outer")
    return joined.sort_by("_row").drop_columns(["_row"])


def _strip(joined: pa.Table, stripping: Stripping) -> pa.Table:
    """Left-join the paragraph decisions: rejected documents get reason `boilerplate_only` (their text
    kept as it was, for the rejects), the others lose their boilerplate units and get their counts.
    Row order is kept; documents already removed as duplicates never have a decision."""
    decisions = stripping.decisions
    keys = decisions.select(["id", "source"]).append_column(
        "_decision", pa.array(np.arange(decisions.num_rows), pa.int64())
    )
    indexed = joined.append_column("_row", pa.array(np.arange(joined.num_rows), pa.int64()))
    table = indexed.join(keys, keys=["id", "source"], join_type="left outer").sort_by("_row")
    which = table.column("_decision")
    table = table.drop_columns(["_row", "_decision"])
    for name in ("hashes", "units", "chars", "chars_left", "rejected"):
        table = table.append_column(name, decisions.column(name).take(which))
    rejected = pc.fill_null(table.column("rejected"), False)
    reason = pc.if_else(rejected, pa.scalar(BOILERPLATE_ONLY), table.column("reason"))
    noun = "lines" if stripping.config.unit == "line" else "paragraphs"
    detail = pc.binary_join_element_wise(
        pc.cast(table.column("units"), pa.string()),
        f" {noun} seen in >= {stripping.config.min_docs} documents removed (",
        pc.cast(table.column("chars"), pa.string()),
        " chars), ",
        pc.cast(table.column("chars_left"), pa.string()),
        " chars left",
        "",
    )
    strip = pc.and_(pc.is_valid(table.column("units")), pc.invert(rejected))
    rows = np.flatnonzero(strip.to_numpy(zero_copy_only=False))
    columns = {
        "reason": reason,
        "_detail": pc.if_else(rejected, detail, pa.scalar(None, pa.string())),
        REMOVED_UNITS: pc.coalesce(table.column("units"), table.column(REMOVED_UNITS)),
        REMOVED_CHARS: pc.coalesce(table.column("chars"), table.column(REMOVED_CHARS)),
    }
    if rows.size:
        take = pa.array(rows)
        stripped = strip_documents(
            table.column("text").take(take).to_pylist(),
            [np.array(h, dtype=np.uint64) for h in table.column("hashes").take(take).to_pylist()],
            stripping.config.unit,
        )
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[rows] = True
        text = table.column("text").combine_chunks()
        columns["text"] = pc.replace_with_mask(text, pa.array(mask), pa.array(stripped, text.type))
        columns |= _sizes(table, mask, stripped)
    for name, values in columns.items():
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, values) if index >= 0 else table.append_column(name, values)
    return table.drop_columns(["hashes", "units", "chars", "chars_left", "rejected"])


def _sizes(table: pa.Table, mask: np.ndarray, stripped: list[str]) -> dict[str, pa.Array]:
    """The tag stage's size columns, recomputed (its definitions) for the stripped documents."""
    new = {
        "n_chars": [len(t) for t in stripped],
        "n_words": [len(t.split()) for t in stripped],
        "n_lines": [t.count("\n") + 1 for t in stripped],
    }
    return {
        name: pc.replace_with_mask(
            table.column(name).combine_chunks(),
            pa.array(mask),
            pa.array(values, table.schema.field(name).type),
        )
        for name, values in new.items()
        if name in table.column_names
    }


def _as_rejects(removed: pa.Table) -> pa.Table:
    detail = pc.binary_join_element_wise(
        "duplicate of ",
        removed.column("cluster"),
        " (similarity ",
        pc.cast(pc.round(removed.column("similarity"), 3), pa.string()),
        ")",
        "",
    )
    if "_detail" in removed.column_names:
        detail = pc.coalesce(removed.column("_detail"), detail)
    removed = removed.set_column(
        removed.schema.get_field_index("dup_cluster"), "dup_cluster", removed.column("cluster")
    )
    return (
        removed.append_column("reject_reason", removed.column("reason"))
        .append_column("reject_stage", pa.array([DEDUP_STAGE] * removed.num_rows, pa.string()))
        .append_column("reject_detail", detail)
    )


def _write(path: Location, table: pa.Table, schema: pa.Schema) -> None:
    write_parquet(path, conform(table, schema), compression="zstd", row_group_size=100_000)


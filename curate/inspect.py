"""`curate inspect OUT`: what a run produced, asked of the Parquet files through DuckDB.

DuckDB reads the parts directly, so inspecting a corpus of any size costs a scan, never a load into Python.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from curate.errors import ConfigError
from curate.manifest import MANIFEST
from curate.storage import Location, location, register_filesystems


def inspect_output(out: Location | str, samples: int = 3) -> dict[str, Any]:
    """`out` may be a local folder or an object-store URL; the parts read are those the manifest lists."""
    out = location(out)
    manifest_path = out / MANIFEST
    if not manifest_path.is_file():
        raise ConfigError(f"{out} has no {MANIFEST}; pass the output directory of a finished `curate run`")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    con = duckdb.connect()
    register_filesystems(con, [out])
    corpus = _parquet_list([out / name for name in manifest["files"] if name.startswith("corpus/")])
    rejects = _parquet_list([out / name for name in manifest["files"] if name.startswith("rejects/")])
    report: dict[str, Any] = {
        "totals": manifest["totals"],
        "warnings": manifest.get("warnings", []),  # manifests written before warnings were kept lack it
        "funnel": with_cpu_seconds(manifest["stages"], manifest.get("stage_cpu_seconds", {})),
    }
    report["domains"] = _rows(
        con,
        f"SELECT domain, count(*) AS docs, sum(length(text)) AS chars FROM {corpus} "
        "GROUP BY domain ORDER BY docs DESC",
    )
    report["reject_reasons"] = _rows(
        con,
        f"SELECT reject_stage AS stage, reject_reason AS reason, count(*) AS docs FROM {rejects} "
        "GROUP BY ALL ORDER BY docs DESC",
    )
    report["samples"] = _rows(
        con,
        f"SELECT id, domain, url, left(text, 160) AS text FROM {corpus} ORDER BY hash(id) LIMIT {samples}",
    )
    return report


def with_cpu_seconds(funnel: list[dict[str, Any]], seconds: dict[str, float]) -> list[dict[str, Any]]:
    """Each funnel row with its stage's CPU seconds (None for dedup, which runs on the driver, and for
    manifests written before they were measured)."""
    return [{**row, "cpu_seconds": seconds.get(row["stage"])} for row in funnel]


EMPTY_COLUMNS = ("domain", "text", "id", "url", "reject_stage", "reject_reason")


def _parquet_list(files: list[Location]) -> str:
    """A DuckDB table expression over the parts, or an empty relation when a run wrote none."""
    if not files:
        columns = ", ".join(f"NULL::VARCHAR AS {name}" for name in EMPTY_COLUMNS)
        return f"(SELECT {columns} WHERE false)"
    listed = ", ".join("'" + str(path).replace("'", "''") + "'" for path in files)
    return f"read_parquet([{listed}], hive_partitioning=false, union_by_name=true)"


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def render_inspection(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    totals = report["totals"]
    console.print(", ".join(f"{k} {v:,}" for k, v in totals.items()))
    for warning in report["warnings"]:
        console.print(f"warning: {warning}", markup=False, highlight=False)
    funnel = [{**row, "cpu s": _cpu(row["cpu_seconds"])} for row in report["funnel"]]
    sections = {
        "funnel": (["stage", "in", "out", "dropped", "cpu s"], funnel),
        "domains": (["domain", "docs", "chars"], report["domains"]),
        "reject reasons": (["stage", "reason", "docs"], report["reject_reasons"]),
        "samples": (["id", "domain", "url", "text"], report["samples"]),
    }
    for title, (columns, rows) in sections.items():
        table = Table(*columns, title=title)
        for row in rows:
            table.add_row(*(_cell(row[c]) for c in columns))
        console.print(table)


def _cpu(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:,.2f}"


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value).replace("\n", " ")

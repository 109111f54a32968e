"""`curate inspect OUT`: what a run produced, asked of the Parquet files through DuckDB.

DuckDB reads the parts directly, so inspecting a corpus of any size costs a scan, never a load into Python.
"""

from __future__ import annotations

import json
import math
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
    report["reject_samples"] = _rows(
        con,
        f"""SELECT stage, reason, id, text FROM (
                SELECT reject_stage AS stage, reject_reason AS reason, id, left(text, 160) AS text,
                    row_number() OVER (PARTITION BY reject_reason ORDER BY hash(id)) AS k
                FROM {rejects}
            ) WHERE k <= {REJECT_SAMPLES} ORDER BY reason, k""",
    )
    report["histograms"] = score_histograms(con, corpus)
    return report


# Scores a run may hold, and whether their spread is read on a log scale (perplexities span decades).
SCORE_SCALES = {
    "quality": "linear",
    "toxicity": "linear",
    "lang_score": "linear",
    "ppl": "log",
    "harmful_ppl": "log",
}
HISTOGRAM_BINS = 20
REJECT_SAMPLES = 2


def score_histograms(con: duckdb.DuckDBPyConnection, corpus: str) -> list[dict[str, Any]]:
    """Per score column, counts in equal bins over its range (shared by every domain, so domains compare),
    by domain. One scan per column; a column absent from the run is skipped."""
    columns = {row[0] for row in con.execute(f"SELECT * FROM {corpus} LIMIT 0").description}
    histograms = []
    for column, scale in SCORE_SCALES.items():
        if column not in columns:
            continue
        value = f"ln({column})" if scale == "log" else column
        finite = f"{column} IS NOT NULL AND isfinite({column})" + (
            f" AND {column} > 0" if scale == "log" else ""
        )
        low, high = con.execute(f"SELECT min({value}), max({value}) FROM {corpus} WHERE {finite}").fetchone()
        if low is None:
            continue
        width = (high - low) / HISTOGRAM_BINS or 1.0
        rows = con.execute(
            f"""SELECT domain, least(floor(({value} - ?) / ?)::INTEGER, {HISTOGRAM_BINS - 1}) AS bin, count(*)
                FROM {corpus} WHERE {finite} GROUP BY ALL""",
            [low, width],
        ).fetchall()
        by_domain: dict[str, list[int]] = {}
        for domain, index, count in rows:
            by_domain.setdefault(domain, [0] * HISTOGRAM_BINS)[index] += count
        edges = [low + i * width for i in range(HISTOGRAM_BINS + 1)]
        histograms.append(
            {
                "column": column,
                "scale": scale,
                "edges": [round(math.exp(e) if scale == "log" else e, 6) for e in edges],
                "domains": dict(sorted(by_domain.items())),
            }
        )
    return histograms


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
        "rejected samples": (["stage", "reason", "id", "text"], report["reject_samples"]),
        "scores by domain (p10 / median / p90 from the histograms)": (
            ["score", "domain", "docs", "p10", "median", "p90"],
            histogram_summary(report["histograms"]),
        ),
    }
    for title, (columns, rows) in sections.items():
        table = Table(*columns, title=title)
        for row in rows:
            table.add_row(*(_cell(row[c]) for c in columns))
        console.print(table)


def histogram_summary(histograms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Quantiles read off the bins (bin centre), so the terminal shows what the dashboard draws."""
    rows = []
    for histogram in histograms:
        edges = histogram["edges"]
        for domain, counts in histogram["domains"].items():
            total = sum(counts)
            quantiles = {f"p{int(q * 100)}": _bin_quantile(counts, edges, q * total) for q in (0.1, 0.5, 0.9)}
            rows.append(
                {
                    "score": histogram["column"],
                    "domain": domain,
                    "docs": total,
                    **quantiles,
                    "median": quantiles.pop("p50"),
                }
            )
    return rows


def _bin_quantile(counts: list[int], edges: list[float], rank: float) -> str:
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank and count:
            return f"{(edges[index] + edges[index + 1]) / 2:.4g}"
    return "-"


def _cpu(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:,.2f}"


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value).replace("\n", " ")

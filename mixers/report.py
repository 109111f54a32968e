"""`curate inspect MIX`: what a mixture holds, per domain, as a table and as PNG plots.

The table puts the manifest's promise (requested share) beside what the parts actually hold (achieved
share, tokens, epochs, mean scores), all recomputed from the Parquet parts through DuckDB, so the report
is evidence, not an echo of the manifest. Histograms are binned in SQL too: a mixture of any size is
summarised without loading it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from mixers.db import connect
from mixers.errors import MixError
from mixers.output import MIX_MANIFEST, is_mixture
from mixers.predicates import quote_identifier

NOT_SCORES = {"n_chars", "n_words", "n_lines", "n_tokens", "epoch", "dup_cluster", "file_row_number"}
HISTOGRAM_BINS = 30
REPORT_DIR = "report"


def load_mixture_manifest(mix: Path) -> dict[str, Any]:
    if not is_mixture(mix):
        raise MixError(f"{mix} is not a mixture (no {MIX_MANIFEST} of kind curate-mixture); run `curate mix`")
    return json.loads((mix / MIX_MANIFEST).read_text(encoding="utf-8"))


def score_columns(schema: pa.Schema) -> list[str]:
    """Numeric columns that are scores (quality, toxicity, ppl, lang_score, ...), not bookkeeping counts."""
    numeric = [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
    return [name for name in numeric if name not in NOT_SCORES]


def inspect_mixture(mix: Path, plots: Path | None = None) -> dict[str, Any]:
    """Per-domain figures recomputed from the parts, plus PNG plots (default MIX/report/)."""
    manifest = load_mixture_manifest(mix)
    parts = [str(mix / entry["path"]) for entry in manifest["files"]]
    if not parts:
        raise MixError(f"{mix} holds no parts; the mixture selected no documents")
    schema = pq.read_schema(parts[0])
    scores = score_columns(schema)
    with connect() as con:
        con.read_parquet(parts, hive_partitioning=False).create_view("mix")
        rows = _domain_rows(con, manifest, scores)
        histograms = {column: _histogram(con, column) for column in [*scores, "n_tokens"]}
    figures = {
        "mixture": str(mix),
        "domains": rows,
        "score_columns": scores,
        "totals": manifest["totals"],
        "notes": manifest.get("notes", []),
        "eval_suite": manifest.get("eval_suite"),
    }
    figures["plots"] = write_plots(rows, histograms, plots or mix / REPORT_DIR)
    return figures


def _domain_rows(con: duckdb.DuckDBPyConnection, manifest: dict[str, Any], scores: list[str]) -> list[dict]:
    means = "".join(f", avg({quote_identifier(c)})" for c in scores)
    found = {
        row[0]: row[1:]
        for row in con.execute(
            f"SELECT domain, count(*), sum(n_tokens), count(DISTINCT id) {means} FROM mix GROUP BY domain"
        ).fetchall()
    }
    total = sum(int(values[1] or 0) for values in found.values()) or 1
    rows = []
    for domain, promised in manifest["domains"].items():
        docs, tokens, unique, *averages = found.get(domain, (0, 0, 0, *([None] * len(scores))))
        rows.append(
            {
                "domain": domain,
                "requested_share": promised["requested_share"],
                "achieved_share": round(int(tokens or 0) / total, 6),
                "tokens": int(tokens or 0),
                "documents": int(docs),
                "unique_documents": int(unique),
                "epochs": promised["epochs"],
                "means": dict(zip(scores, averages, strict=True)),
            }
        )
    return rows


def _histogram(con: duckdb.DuckDBPyConnection, column: str) -> dict[str, Any]:
    """Counts per domain in equal bins between the column's min and max (log10 bins for token counts)."""
    name = quote_identifier(column)
    value = f"log10(greatest({name}, 1))" if column == "n_tokens" else f"CAST({name} AS DOUBLE)"
    low, high = con.execute(f"SELECT min({value}), max({value}) FROM mix").fetchall()[0]
    if low is None or not math.isfinite(low) or not math.isfinite(high):
        return {"edges": [], "counts": {}, "log10": column == "n_tokens"}
    width = (high - low) / HISTOGRAM_BINS or 1.0
    rows = con.execute(
        f"SELECT domain, least(CAST(floor(({value} - ?) / ?) AS INTEGER), ?) AS bin, count(*) "
        f"FROM mix WHERE {name} IS NOT NULL GROUP BY ALL",
        [low, width, HISTOGRAM_BINS - 1],
    ).fetchall()
    counts: dict[str, list[int]] = {}
    for domain, index, count in rows:
        counts.setdefault(domain, [0] * HISTOGRAM_BINS)[int(index)] += int(count)
    edges = [low + i * width for i in range(HISTOGRAM_BINS + 1)]
    return {"edges": edges, "counts": dict(sorted(counts.items())), "log10": column == "n_tokens"}


def write_plots(rows: list[dict], histograms: dict[str, dict[str, Any]], folder: Path) -> list[str]:
    """shares.png (requested vs achieved) and scores.png (one histogram panel per column, per domain)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    shares = folder / "shares.png"
    _plot_shares(plt, rows, shares)
    scores = folder / "scores.png"
    _plot_histograms(plt, histograms, scores)
    return [str(shares), str(scores)]


def _plot_shares(plt: Any, rows: list[dict], path: Path) -> None:
    names = [row["domain"] for row in rows]
    positions = range(len(names))
    figure, axes = plt.subplots(figsize=(max(4, 1.2 * len(names) + 2), 3.5))
    axes.bar([p - 0.2 for p in positions], [r["requested_share"] for r in rows], 0.4, label="requested")
    axes.bar([p + 0.2 for p in positions], [r["achieved_share"] for r in rows], 0.4, label="achieved")
    axes.set_xticks(list(positions), names)
    axes.set_ylabel("share of tokens")
    axes.set_title("domain shares: requested vs achieved")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_histograms(plt: Any, histograms: dict[str, dict[str, Any]], path: Path) -> None:
    columns = list(histograms)
    across = min(3, len(columns))
    down = math.ceil(len(columns) / across)
    figure, axes = plt.subplots(down, across, figsize=(4.5 * across, 2.8 * down), squeeze=False)
    for axis in axes.flat[len(columns) :]:
        axis.set_visible(False)
    for axis, column in zip(axes.flat, columns, strict=False):
        histogram = histograms[column]
        edges = histogram["edges"]
        for domain, counts in histogram["counts"].items():
            axis.stairs(counts, edges, label=domain)
        label = f"log10({column})" if histogram["log10"] else column
        axis.set_xlabel(label)
        axis.set_ylabel("documents")
        axis.set_title(f"{label} per domain" if edges else f"{column}: no values")
        if histogram["counts"]:
            axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def render_mixture_report(report: dict[str, Any]) -> None:
    """Two rich tables: shares, tokens and epochs per domain; then mean scores (a row per score column,
    a column per domain, so a corpus with many score columns still fits a terminal)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        "domain", "requested", "achieved", "tokens", "docs", "epochs", title=f"mixture {report['mixture']}"
    )
    for row in report["domains"]:
        table.add_row(
            row["domain"],
            f"{row['requested_share']:.3f}",
            f"{row['achieved_share']:.3f}",
            f"{row['tokens']:,}",
            f"{row['documents']:,}",
            f"{row['epochs']:.2f}",
        )
    console.print(table)
    if report["score_columns"]:
        means = Table("mean score", *[row["domain"] for row in report["domains"]])
        for column in report["score_columns"]:
            means.add_row(column, *[_number(row["means"].get(column)) for row in report["domains"]])
        console.print(means)
    totals = report["totals"]
    console.print(
        f"requested {totals['requested_tokens']:,} tokens, achieved {totals['achieved_tokens']:,} "
        f"in {totals['documents']:,} documents"
    )
    suite = report.get("eval_suite")
    if suite:
        console.print(
            f"evaluation suite {suite['hash'][:12]}: {suite['documents']:,} documents in "
            f"{suite['path']}/, {suite['near_duplicates_excluded']:,} near-duplicates kept out of training"
        )
    for note in report["notes"]:
        console.print(f"note: {note}")
    console.print("plots: " + ", ".join(report["plots"]))


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"

"""manifest.json: what a run read, what it kept and rejected and why, and proof that nothing went missing.

The accounting invariant (read = kept + rejected + duplicates) is checked twice: from the shards'
completion records, and against the row counts actually on disk, so a lost file cannot hide. Documents
that paragraph dedup leaves with too little text count as rejected (reason `boilerplate_only`).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import curate
from curate.dedup.phase import DedupResult
from curate.plan import RunPlan
from curate.schema import READ_STAGE
from curate.shard_runner import ShardReport
from curate.storage import Location, read_parquet_metadata, write_atomic

MANIFEST = "manifest.json"


class AccountingError(RuntimeError):
    """Counts do not balance: a bug, never a user error, so the run fails loudly."""


def code_version() -> str:
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return f"{curate.__version__}+{commit}"


def stage_totals(reports: list[ShardReport], order: list[str]) -> list[dict[str, Any]]:
    """The funnel in stage order (read first), each stage's counts summed over shards."""
    totals: dict[str, dict[str, Any]] = {
        name: {"stage": name, "in": 0, "out": 0, "dropped": Counter(), "stats": Counter()} for name in order
    }
    for report in reports:
        for name, counts in report.stages.items():
            entry = totals[name]
            entry["in"] += counts.docs_in
            entry["out"] += counts.docs_out
            entry["dropped"].update(counts.dropped)
            entry["stats"].update(counts.stats)
    for entry in totals.values():
        entry["dropped"] = dict(sorted(entry["dropped"].items()))
        entry["stats"] = dict(sorted(entry["stats"].items()))
    return list(totals.values())


def stage_cpu_seconds(reports: list[ShardReport], order: list[str]) -> dict[str, float]:
    """CPU seconds per stage (read first) summed over shards, so over workers: CPU time, not the wall time
    they share. Kept beside the funnel, not in it, so the funnel stays the same on every run and executor."""
    seconds = dict.fromkeys(order, 0.0)
    for report in reports:
        for name, counts in report.stages.items():
            seconds[name] += counts.cpu_seconds
    return {name: round(value, 3) for name, value in seconds.items()}


def rows_on_disk(out: Location, files: list[str]) -> tuple[int, int, dict[str, int]]:
    """Kept rows, rejected rows and kept rows per domain, read from the Parquet footers."""
    kept = rejected = 0
    by_domain: Counter = Counter()
    for name in files:
        if not name.startswith(("corpus/", "rejects/")):
            continue
        rows = read_parquet_metadata(out / name).num_rows
        if name.startswith("rejects/"):
            rejected += rows
        else:
            kept += rows
            by_domain[name.split("/")[1].removeprefix("domain=")] += rows
    return kept, rejected, dict(sorted(by_domain.items()))


def build_manifest(
    plan: RunPlan,
    reports: list[ShardReport],
    wall_seconds: float,
    executor: str,
    dedup: DedupResult | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """`warnings`: the fallbacks the run took (said on stderr at its start), kept in its summary."""
    files = sorted({f for report in reports for f in report.files} | set(dedup.files if dedup else []))
    duplicates = dedup.duplicates if dedup else 0
    boilerplate_only = dedup.boilerplate_only if dedup else 0  # rejects of paragraph dedup
    kept_before_dedup = sum(r.kept for r in reports)
    totals = {
        "read": sum(r.read for r in reports),
        "kept": kept_before_dedup - duplicates - boilerplate_only,
        "rejected": sum(r.rejected for r in reports) + boilerplate_only,
        "duplicates": duplicates,
        "text_bytes": sum(r.text_bytes for r in reports),
    }
    order = [READ_STAGE] + [spec.name for spec in plan.config.stages]
    stages = stage_totals(reports, order)
    if dedup is not None:
        stages.append(dedup_funnel(dedup, kept_before_dedup))
    kept_on_disk, rejected_on_disk, by_domain = rows_on_disk(plan.out, files)
    check_accounting(totals, kept_on_disk, rejected_on_disk)
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "executor": executor,
        "config": json.loads(plan.config.canonical_json()),
        "config_hash": plan.config.config_hash(),
        "warnings": list(warnings or []),
        "inputs": [
            {
                "source": r.source,
                "path": r.path,
                "size": r.size,
                "sha256": r.sha256,
                "read": r.read,
                "kept": r.kept,
                "rejected": r.rejected,
                **r.input,
            }
            for r in reports
        ],
        "stages": stages,
        "dedup": asdict(dedup) if dedup else None,
        "domains": by_domain,
        "totals": totals,
        "wall_seconds": round(wall_seconds, 3),
        "shard_seconds": round(sum(r.seconds for r in reports), 3),
        "stage_cpu_seconds": stage_cpu_seconds(reports, order),
        "files": files,
    }


def dedup_funnel(dedup: DedupResult, kept_before: int) -> dict[str, Any]:
    dropped = {
        "exact_duplicate": dedup.exact_duplicate,
        "near_duplicate": dedup.near_duplicate,
        "boilerplate_only": dedup.boilerplate_only,
    }
    stats = {k: getattr(dedup, k) for k in ("candidate_pairs", "verified_pairs", "clusters")}
    paragraph_stats = (
        "boilerplate_paragraphs",
        "paragraph_docs",
        "paragraphs_removed",
        "paragraph_chars_removed",
    )
    stats |= {k: getattr(dedup, k) for k in paragraph_stats if getattr(dedup, k)}
    return {
        "stage": "dedup",
        "in": kept_before,
        "out": kept_before - dedup.duplicates - dedup.boilerplate_only,
        "dropped": {k: v for k, v in dropped.items() if v},
        "stats": stats,
    }


def check_accounting(totals: dict[str, int], kept_on_disk: int, rejected_on_disk: int) -> None:
    read, kept, rejected, duplicates = (totals[k] for k in ("read", "kept", "rejected", "duplicates"))
    if read != kept + rejected + duplicates:
        raise AccountingError(f"read {read} != kept {kept} + rejected {rejected} + duplicates {duplicates}")
    if kept_on_disk != kept or rejected_on_disk != rejected + duplicates:
        raise AccountingError(
            f"files on disk hold {kept_on_disk} kept and {rejected_on_disk} rejected rows, but the shard "
            f"records say {kept} kept and {rejected + duplicates} rejected"
        )


def write_manifest(out: Location, manifest: dict[str, Any]) -> Location:
    path = out / MANIFEST
    write_atomic(path, json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return path

"""The persistent dedup index: sketches of everything already emitted, so a new batch is deduplicated
against all earlier batches without recomputing them.

Layout: `INDEX/segments/<run>.parquet` (one per run that added documents) and `INDEX/index.json`, which
lists the segments that count, with a version number. A segment is written under a temporary name and
renamed, and only then is `index.json` replaced (also by rename): a crash at any point leaves either the
old index or the new one, never a half-written one. A segment not listed in index.json is ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from curate.writer import temp_path, write_atomic

INDEX_FILE = "index.json"


class DedupIndex:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any]:
        file = self.path / INDEX_FILE
        if not file.exists():
            return {"version": 0, "segments": []}
        return json.loads(file.read_text(encoding="utf-8"))

    def segments(self, excluding_run: str | None = None) -> list[Path]:
        return [
            self.path / "segments" / f"{entry['run']}.parquet"
            for entry in self.read()["segments"]
            if entry["run"] != excluding_run
        ]

    def contains(self, run: str) -> bool:
        return any(entry["run"] == run for entry in self.read()["segments"])

    def add_segment(self, run: str, documents: int) -> int:
        """Register a finished segment file (already at its final name) and return the new version."""
        current = self.read()
        if self.contains(run):
            return current["version"]
        entry = {"run": run, "documents": documents}
        updated = {"version": current["version"] + 1, "segments": [*current["segments"], entry]}
        write_atomic(self.path / INDEX_FILE, json.dumps(updated, indent=1))
        return updated["version"]

    def write_segment(self, run: str, table: Any) -> Path:
        final = self.path / "segments" / f"{run}.parquet"
        final.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, temp_path(final), compression="zstd")
        temp_path(final).replace(final)
        return final

"""The persistent dedup index: sketches of everything already emitted, so a new batch is deduplicated
against all earlier batches without recomputing them.

Layout: `INDEX/segments/<run>.parquet` (one per run that added documents) and `INDEX/index.json`, which
lists the segments that count, with a version number. A segment is written under a temporary name and
renamed, and only then is `index.json` replaced (also by rename): a crash at any point leaves either the
old index or the new one, never a half-written one. A segment not listed in index.json is ignored.
Registration is serialised by a lock (a flock on disk, a lease on an object store; see curate.locks), so
two runs finishing at once cannot lose a segment. On an object store the segment is uploaded under its
final name (it appears only complete) and counts once index.json names it.

index.json also records the sketch parameters (ngram, num_perm, bands, seed): signatures or band keys
made with others cannot be compared, so a run with different ones is refused instead of silently
finding no duplicates.
"""

from __future__ import annotations

import json
from typing import Any

from curate.errors import ConfigError
from curate.locks import exclusive
from curate.storage import Location, write_atomic

INDEX_FILE = "index.json"
LOCK_FILE = "index.lock"
SKETCH_KEYS = ("ngram", "num_perm", "bands", "seed")


class DedupIndex:
    def __init__(self, path: Location) -> None:
        self.path = path

    def read(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / INDEX_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": 0, "segments": []}

    def segments(self, excluding_run: str | None = None) -> list[Location]:
        return [
            self.segment_path(entry["run"])
            for entry in self.read()["segments"]
            if entry["run"] != excluding_run
        ]

    def contains(self, run: str) -> bool:
        return any(entry["run"] == run for entry in self.read()["segments"])

    def check_sketch(self, sketch: dict[str, int]) -> None:
        """Refuse sketch parameters other than the ones the index was built with (one clear line)."""
        recorded = self.read().get("sketch")
        if recorded is not None and recorded != sketch:
            differ = ", ".join(
                f"{k} {recorded[k]} vs {sketch[k]}" for k in SKETCH_KEYS if recorded[k] != sketch[k]
            )
            raise ConfigError(
                f"dedup.index {self.path} was built with other sketch parameters ({differ}); "
                "use the index's values or a new index"
            )

    def segment_path(self, run: str) -> Location:
        """Where a run's segment file goes; `add_segment` registers it once it is in place."""
        return self.path / "segments" / f"{run}.parquet"

    def add_segment(self, run: str, documents: int, sketch: dict[str, int] | None = None) -> int:
        """Register a finished segment file (already at its final name) and return the new version."""
        with exclusive(self.path / LOCK_FILE, wait=True):
            current = self.read()
            if self.contains(run):
                return current["version"]
            entry = {"run": run, "documents": documents}
            updated = {"version": current["version"] + 1, "segments": [*current["segments"], entry]}
            recorded = current.get("sketch", sketch)
            if recorded is not None:
                updated["sketch"] = recorded
            write_atomic(self.path / INDEX_FILE, json.dumps(updated, indent=1))
            return updated["version"]


def sketch_parameters(config: Any) -> dict[str, int]:
    """The settings a sketch depends on, from a DedupConfig."""
    return {key: getattr(config, key) for key in SKETCH_KEYS}

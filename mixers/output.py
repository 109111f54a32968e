"""Writing a mixture: byte-stable Parquet parts in a staging folder, committed by one rename.

Byte-stable means the same rows give the same files whatever batch sizes DuckDB hands over: row groups
and parts are cut at exact row positions decided by row counts and text bytes, never by batch boundaries.
That, plus a total order on the rows, is what makes a mixture built twice with one seed byte-identical.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.storage import Location
from mixers.errors import MixError

MIX_MANIFEST = "manifest.json"
MIX_KIND = "curate-mixture"
ROW_GROUP_ROWS = 10_000
ROW_GROUP_BYTES = 64 << 20
PART_ROWS = 200_000
NO_DICTIONARY = {"text", "id", "url", "meta"}  # near-unique values: a dictionary attempt is wasted work


@dataclass
class PartStats:
    path: str
    rows: int = 0
    tokens: int = 0


@dataclass
class MixWriter:
    """Streams ordered batches into part-NNNNN.parquet files with deterministic row-group cuts."""

    folder: Path
    schema: pa.Schema
    group_rows: int = ROW_GROUP_ROWS
    group_bytes: int = ROW_GROUP_BYTES
    part_rows: int = PART_ROWS
    parts: list[PartStats] = field(default_factory=list)
    _pending: list[pa.Table] = field(default_factory=list)
    _writer: pq.ParquetWriter | None = None

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        self._pending.append(table.cast(self.schema))
        pending = pa.concat_tables(self._pending)
        while (cut := self._cut(pending)) is not None:
            self._write_group(pending.slice(0, cut))
            pending = pending.slice(cut)
        self._pending = [pending] if pending.num_rows else []

    def _cut(self, table: pa.Table) -> int | None:
        """Rows in the next full row group, or None while the pending rows fit in one."""
        if table.num_rows == 0:
            return None
        sizes = pc.binary_length(table.column("text").combine_chunks()).fill_null(0).to_numpy(False)
        over = np.flatnonzero(np.cumsum(sizes, dtype=np.int64) >= self.group_bytes)
        by_bytes = int(over[0]) + 1 if len(over) else None
        by_rows = self.group_rows if table.num_rows >= self.group_rows else None
        cuts = [c for c in (by_bytes, by_rows) if c is not None]
        return min(cuts) if cuts else None

    def _write_group(self, table: pa.Table) -> None:
        if self._writer is None:
            stats = PartStats(f"part-{len(self.parts):05d}.parquet")
            self.parts.append(stats)
            self._writer = pq.ParquetWriter(
                self.folder / stats.path,
                self.schema,
                compression="zstd",
                use_dictionary=[n for n in self.schema.names if n not in NO_DICTIONARY],
            )
        self._writer.write_table(table, row_group_size=table.num_rows)
        current = self.parts[-1]
        current.rows += table.num_rows
        current.tokens += int(pc.sum(table.column("n_tokens")).as_py() or 0)
        if current.rows >= self.part_rows:
            self._close_part()

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> list[PartStats]:
        if self._pending:
            self._write_group(pa.concat_tables(self._pending))
            self._pending = []
        self._close_part()
        return self.parts


def is_mixture(path: Path) -> bool:
    manifest = Path(path) / MIX_MANIFEST
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("kind") == MIX_KIND
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def check_output(out: Path, corpora: list[Location]) -> None:
    """Refuse, before any work, an output that would overwrite something that is not a mixture."""
    resolved = out.resolve()
    for root in (root for root in corpora if isinstance(root, Path)):
        if resolved == root.resolve() or root.resolve() in resolved.parents:
            raise MixError(f"--out {out} is inside corpus {root}; write the mixture to its own folder")
    if out.exists() and not out.is_dir():
        raise MixError(f"--out {out} is a file; pass a folder for the mixture")
    if out.is_dir() and any(out.iterdir()) and not is_mixture(out):
        raise MixError(f"--out {out} exists and is not a mixture; choose an empty or new folder")


def staging_dir(out: Path) -> Path:
    """A fresh sibling folder of `out`; leftovers of killed builds (their process is gone) are removed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        if not _alive(stale.name.rsplit("-", 1)[-1]):
            shutil.rmtree(stale, ignore_errors=True)
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def _alive(pid: str) -> bool:
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def commit(staging: Path, out: Path) -> None:
    """Replace `out` by the finished staging folder: readers see the old mixture or the new, never half."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)

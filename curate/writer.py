"""Parquet output of one shard: corpus parts by domain and one rejects part, committed all at once.

On a disk everything is written to temporary names and renamed only in `commit()`, after the last batch;
on an object store each part is uploaded under its final name (an object appears only once complete).
Either way the shard counts only once its completion record is written, and a shard without one is
redone on resume after its leftovers are deleted (`stale_outputs`). File names carry the shard's key, so
redoing a shard replaces exactly its own files and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.schema import UNASSIGNED_DOMAIN, conform
from curate.storage import TMP_SUFFIX, Location, commit, discard, files_under, parquet_writer, relative

OUTPUT_FOLDERS = ("corpus", "rejects")
SKETCH_DIR = "_dedup"  # per-shard dedup sketches, read by the global dedup phase
MAX_ROWS_PER_FILE = 1_000_000


@dataclass
class RowGroupLimits:
    rows: int = 100_000
    bytes: int = 128 << 20


@dataclass
class _BufferedFile:
    """One output Parquet file fed in batches and flushed a row group at a time."""

    path: Location
    schema: pa.Schema
    limits: RowGroupLimits
    writer: pq.ParquetWriter | None = None
    pending: list[pa.Table] = field(default_factory=list)
    pending_rows: int = 0
    pending_bytes: int = 0
    rows: int = 0

    def add(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.pending_rows += table.num_rows
        self.pending_bytes += table.nbytes
        self.rows += table.num_rows
        if self.pending_rows >= self.limits.rows or self.pending_bytes >= self.limits.bytes:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        if self.writer is None:
            self.writer = parquet_writer(self.path, self.schema, compression="zstd")
        table = pa.concat_tables(self.pending)
        for start in range(0, table.num_rows, self.limits.rows):
            self.writer.write_table(table.slice(start, self.limits.rows), row_group_size=self.limits.rows)
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()


class ShardWriter:
    """Writes one shard's kept documents (partitioned by domain) and its rejects."""

    def __init__(
        self,
        out: Location,
        key: str,
        corpus_schema: pa.Schema,
        reject_schema: pa.Schema,
        limits: RowGroupLimits,
    ) -> None:
        self.out = out
        self.key = key
        self.corpus_schema = corpus_schema
        self.reject_schema = reject_schema
        self.limits = limits
        self._files: dict[tuple[str, int], _BufferedFile] = {}

    def write_kept(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        domains = pc.fill_null(table.column("domain"), UNASSIGNED_DOMAIN)
        table = table.set_column(table.schema.get_field_index("domain"), "domain", domains)
        for domain in sorted(pc.unique(domains).to_pylist()):
            part = table.filter(pc.equal(domains, domain))
            self._append(f"corpus/domain={domain}", conform(part, self.corpus_schema), self.corpus_schema)

    def write_sketches(self, table: pa.Table, folder: str = SKETCH_DIR) -> None:
        """Dedup rows of this shard's kept documents; `folder` must lie under SKETCH_DIR (cleared on redo)."""
        if table.num_rows:
            self._append(folder, table, table.schema)

    def write_rejects(self, table: pa.Table) -> None:
        if table.num_rows:
            self._append("rejects", conform(table, self.reject_schema), self.reject_schema)

    def _append(self, folder: str, table: pa.Table, schema: pa.Schema) -> None:
        seq = 0
        while (current := self._files.get((folder, seq))) is not None and current.rows >= MAX_ROWS_PER_FILE:
            seq += 1
        if current is None:
            path = self.out / folder / f"part-{self.key}-{seq:04d}.parquet"
            current = self._files[(folder, seq)] = _BufferedFile(path, schema, self.limits)
        current.add(table)

    def commit(self) -> list[str]:
        """Close every file and move it to its final name; returns the paths relative to the output."""
        for buffered in self._files.values():
            buffered.close()
        final = []
        for buffered in self._files.values():
            commit(buffered.path)
            final.append(relative(buffered.path, self.out))
        return sorted(final)

    def abort(self) -> None:
        for buffered in self._files.values():
            if buffered.writer is not None:
                buffered.writer.close()
            discard(buffered.path)


def stale_outputs(out: Location, keys: Iterable[str]) -> list[Location]:
    """Whatever an interrupted attempt left for these shards (parts under their keys, temporaries),
    found in one listing of the output, so redoing many shards does not list the output once each."""
    prefixes = tuple(f"part-{key}-" for key in keys)
    found = []
    for folder in (*OUTPUT_FOLDERS, SKETCH_DIR):
        for path in files_under(out / folder):
            if path.name.startswith(prefixes) or path.name.endswith(TMP_SUFFIX):
                found.append(path)
    return found

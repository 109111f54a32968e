"""Parquet shards, read a row group at a time so memory follows the batch, not the file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from curate.readers.fields import FieldMap
from curate.readers.jsonl import record_to_doc
from curate.readers.records import BadRecord, RawDoc
from curate.schema import UNREADABLE

ROWS_PER_READ = 1024


def read_parquet(path: Path, fields: FieldMap) -> Iterator[RawDoc | BadRecord]:
    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # noqa: BLE001 - any failure to open is a bad file, not a crash
        yield BadRecord(0, UNREADABLE, f"not a readable Parquet file ({error})")
        return
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=ROWS_PER_READ):
            for record in batch.to_pylist():
                yield record_to_doc(record, row, fields, where=f"row {row}")
                row += 1
    except Exception as error:  # noqa: BLE001 - a corrupt page ends the file with a reject
        yield BadRecord(row, UNREADABLE, f"row {row}: corrupt Parquet data ({error}); later rows unreadable")

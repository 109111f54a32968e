"""Parquet shards, read a row group at a time so memory follows the row group, not the file.

The footer says how many rows the file holds, and every one of them leaves as a document or a reject:
a row group that cannot be decoded becomes one reject per row (with the row range), and a batch whose
conversion to Python fails (say a timestamp in year 14000) is retried row by row, so only the rows
holding a bad value are `bad_value` rejects naming the column. Only an unreadable footer (no row count
to trust) makes the whole file one reject.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from curate.readers.fields import FieldMap
from curate.readers.jsonl import record_to_doc
from curate.readers.records import RAW_KEEP_CHARS, BadRecord, RawDoc, ReadLimits, ReadTally
from curate.schema import BAD_VALUE, TRUNCATED, UNREADABLE

ROWS_PER_READ = 1024


class BadFooter(ValueError):
    """Footer metadata that parses but contradicts itself or the file's size."""


def read_parquet(
    handle: BinaryIO, fields: FieldMap, tally: ReadTally, _limits: ReadLimits
) -> Iterator[RawDoc | BadRecord]:
    try:
        parquet = pq.ParquetFile(handle)
        check_footer(parquet.metadata, tally.size)
    except Exception as error:  # noqa: BLE001 - any failure to read the footer is a bad file, not a crash
        yield BadRecord(0, UNREADABLE, f"not a readable Parquet file ({error})", covers_rest=True)
        return
    tally.expected = parquet.metadata.num_rows
    tally.consumed = tally.size  # the footer maps every byte; the rows are what is checked
    first = 0
    clean = True
    for index in range(parquet.metadata.num_row_groups):
        rows = parquet.metadata.row_group(index).num_rows
        try:
            table = parquet.read_row_group(index)
            if table.num_rows != rows:
                raise BadFooter(f"decoded {table.num_rows} rows where the footer lists {rows}")
        except Exception as error:  # noqa: BLE001 - a corrupt row group: its rows are rejects, not a crash
            clean = False
            yield from _lost_row_group(index, first, rows, error)
        else:
            yield from _table_rows(table, first, fields)
        first += rows
    tally.clean_end = clean


def check_footer(metadata: pq.FileMetaData, size: int) -> None:
    """A footer whose row groups don't add up or point past the end of the file is not trusted."""
    groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
    if metadata.num_rows < 0 or sum(g.num_rows for g in groups) != metadata.num_rows:
        raise BadFooter(f"footer row count {metadata.num_rows} does not match its row groups")
    for index, group in enumerate(groups):
        for column in range(group.num_columns):
            chunk = group.column(column)
            start = min(o for o in (chunk.data_page_offset, chunk.dictionary_page_offset) if o is not None)
            if group.num_rows < 0 or start < 0 or start + chunk.total_compressed_size > size:
                raise BadFooter(f"row group {index} column {column} points past the end of the file")


def _lost_row_group(index: int, first: int, rows: int, error: Exception) -> Iterator[BadRecord]:
    message = str(error)
    reason = TRUNCATED if "end of file" in message.lower() or "eof" in message.lower() else UNREADABLE
    detail = f"rows {first}-{first + rows - 1} (row group {index}): corrupt Parquet data ({message[:500]})"
    for row in range(first, first + rows):
        yield BadRecord(row, reason, f"row {row}: {detail}")


def _table_rows(table: pa.Table, first: int, fields: FieldMap) -> Iterator[RawDoc | BadRecord]:
    row = first
    for batch in table.to_batches(max_chunksize=ROWS_PER_READ):
        try:
            records = batch.to_pylist()
        except Exception:  # noqa: BLE001 - some value has no Python form: find the rows that hold one
            for index in range(batch.num_rows):
                yield _one_row(batch, index, row + index, fields)
        else:
            for offset, record in enumerate(records):
                yield record_to_doc(record, row + offset, fields, where=f"row {row + offset}")
        row += batch.num_rows


def _one_row(batch: pa.RecordBatch, index: int, row: int, fields: FieldMap) -> RawDoc | BadRecord:
    record: dict = {}
    bad: list[str] = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            record[name] = column[index].as_py()
        except Exception as error:  # noqa: BLE001 - the value is the reject, with its column named
            bad.append(f"{name!r} ({error})")
    if not bad:
        return record_to_doc(record, row, fields, where=f"row {row}")
    raw = orjson.dumps(record, default=str).decode()[:RAW_KEEP_CHARS]
    detail = f"row {row}: column {', '.join(bad)} holds a value with no Python form"
    return BadRecord(row, BAD_VALUE, detail, raw=raw)

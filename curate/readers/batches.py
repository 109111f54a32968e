"""Turn a reader's records into Arrow batches of documents plus a batch of rejects.

This is where every record is accounted for at read time: each record yields exactly one row, either in
the documents table or, with its reason and location, in the rejects table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from curate.readers.fields import FieldMap
from curate.readers.formats import Format, read_file
from curate.readers.records import RAW_KEEP_CHARS, BadRecord, RawDoc, ReadLimits, ReadTally
from curate.readers.warc import DEFAULT_EXTRACTOR, Extractor
from curate.schema import (
    BASE_SCHEMA,
    READ_STAGE,
    TIMESTAMP,
    TOO_LONG,
    stable_id,
    with_reject_columns,
)
from curate.storage import Location

REJECT_SCHEMA = with_reject_columns(BASE_SCHEMA)
EMPTY = "empty"


@dataclass(frozen=True)
class ShardSource:
    """One input file, with the name it carries in `source` (stable across machines, unlike its path)."""

    path: Location
    source: str
    format: Format
    fields: FieldMap
    domain: str | None = None
    data_roots: tuple[str, ...] = ()  # empty: unconfined; else the file must resolve inside one of them
    extractor: Extractor = DEFAULT_EXTRACTOR  # HTML to main text, for WARC responses


@dataclass
class ReadBatch:
    docs: pa.Table
    rejects: pa.Table


def read_batches(
    shard: ShardSource,
    max_docs: int,
    max_bytes: int,
    tally: ReadTally | None = None,
    limits: ReadLimits = ReadLimits(),  # noqa: B008 - frozen, never mutated
) -> Iterator[ReadBatch]:
    """Batches of documents and read-stage rejects; `tally` is filled in with what the reader saw."""
    tally = tally if tally is not None else ReadTally()
    docs: list[RawDoc] = []
    bad: list[BadRecord] = []
    size = 0
    items = read_file(
        shard.path, shard.format, shard.fields, tally, limits, shard.data_roots, extractor=shard.extractor
    )
    for item in items:
        tally.records += 1
        if isinstance(item, RawDoc):
            item = check_document(item, limits)
        if isinstance(item, BadRecord):
            if item.covers_rest:
                tally.lost_tail = item.reason
            bad.append(item)
        else:
            docs.append(item)
            size += len(item.text)
        if len(docs) + len(bad) >= max_docs or size >= max_bytes:
            yield ReadBatch(docs_table(docs, shard), rejects_table(bad, shard))
            docs, bad, size = [], [], 0
    if docs or bad:
        yield ReadBatch(docs_table(docs, shard), rejects_table(bad, shard))


def check_document(doc: RawDoc, limits: ReadLimits) -> RawDoc | BadRecord:
    """Empty and over-long documents stop here, before any stage sees them; a prefix of a long one stays."""
    if len(doc.text) > limits.max_doc_chars:
        detail = f"{doc.where}: {len(doc.text)} characters, longer than max_doc_chars {limits.max_doc_chars}"
        return BadRecord(doc.offset, TOO_LONG, detail, raw=doc.text[:RAW_KEEP_CHARS], meta=doc.meta)
    if not doc.text.strip():
        return BadRecord(doc.offset, EMPTY, f"{doc.where}: text is empty or whitespace only", meta=doc.meta)
    return doc


def docs_table(docs: list[RawDoc], shard: ShardSource) -> pa.Table:
    source = shard.source
    columns = {
        "id": [doc.id if doc.id else stable_id(source, doc.offset) for doc in docs],
        "text": [doc.text for doc in docs],
        "url": [doc.url for doc in docs],
        "source": [source] * len(docs),
        "crawl_date": [parse_date(doc.date, doc.meta) for doc in docs],
        "domain": [shard.domain] * len(docs),
        "meta": [dump_meta(doc.meta) for doc in docs],
    }
    return pa.Table.from_pydict(columns, schema=BASE_SCHEMA)


def rejects_table(bad: list[BadRecord], shard: ShardSource) -> pa.Table:
    source = shard.source
    columns = {
        "id": [stable_id(source, record.offset) for record in bad],
        "text": [record.raw for record in bad],
        "url": [None] * len(bad),
        "source": [source] * len(bad),
        "crawl_date": [None] * len(bad),
        "domain": [shard.domain] * len(bad),
        "meta": [dump_meta({**record.meta, "offset": record.offset}) for record in bad],
        "reject_reason": [record.reason for record in bad],
        "reject_stage": [READ_STAGE] * len(bad),
        "reject_detail": [f"{source}: {record.detail}" for record in bad],
    }
    return pa.Table.from_pydict(columns, schema=REJECT_SCHEMA)


def dump_meta(meta: dict[str, Any]) -> str | None:
    if not meta:
        return None
    return orjson.dumps(meta, option=orjson.OPT_SORT_KEYS, default=str).decode()


def parse_date(value: Any, meta: dict[str, Any]) -> datetime | None:
    """ISO-8601 strings (with Z or an offset) and Unix seconds or milliseconds; naive times are UTC.

    A date that does not parse is kept verbatim in meta as `crawl_date_raw` rather than dropped.
    """
    if value is None:
        return None
    parsed = _parse_date(value)
    if parsed is None:
        meta["crawl_date_raw"] = value
    return parsed


def _parse_date(value: Any) -> datetime | None:
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = value / 1000 if value > 1e11 else value
            return datetime.fromtimestamp(seconds, tz=UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip())
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


__all__ = ["ReadBatch", "ShardSource", "read_batches", "REJECT_SCHEMA", "TIMESTAMP"]

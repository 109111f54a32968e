"""The one Arrow document schema every reader produces and every writer expects.

Stages add columns; they never rename or drop these. Keeping the base schema in one place is what lets
the local and Ray executors, the mixers and the trainer agree on a corpus without talking to each other.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

import pyarrow as pa
from pydantic import AfterValidator

TIMESTAMP = pa.timestamp("us", tz="UTC")

BASE_FIELDS: list[pa.Field] = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("text", pa.large_string()),
    pa.field("url", pa.string()),
    pa.field("source", pa.string(), nullable=False),
    pa.field("crawl_date", TIMESTAMP),
    pa.field("domain", pa.string()),
    pa.field("meta", pa.string()),
]
BASE_SCHEMA = pa.schema(BASE_FIELDS)

REJECT_FIELDS: list[pa.Field] = [
    pa.field("reject_reason", pa.string(), nullable=False),
    pa.field("reject_stage", pa.string(), nullable=False),
    pa.field("reject_detail", pa.string()),
]

UNREADABLE = "unreadable"
TRUNCATED = "truncated"  # the input ends early (cut compressed stream, cut WARC record, short Parquet)
TOO_LONG = "too_long"  # a document or raw record above `max_doc_chars`, refused before any stage
BAD_VALUE = "bad_value"  # a Parquet row with a value no Python type holds (e.g. a timestamp in year 14000)
UNASSIGNED_DOMAIN = "unassigned"  # partition for kept documents that no rule or input gave a domain
READ_STAGE = "read"


def stable_id(source: str, offset: int) -> str:
    """An id for a record that has none: the same file and offset always give the same id."""
    return hashlib.blake2b(f"{source}\0{offset}".encode(), digest_size=12).hexdigest()


def empty_table(schema: pa.Schema) -> pa.Table:
    return pa.Table.from_batches([], schema=schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Order and cast columns to `schema`, filling absent nullable columns with nulls.

    Every part file of a run must carry the same schema so DuckDB and Ray Data can read them as one table.
    """
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def with_reject_columns(schema: pa.Schema) -> pa.Schema:
    return pa.schema(list(schema) + REJECT_FIELDS)


DOMAIN_NAME = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


def check_domain_name(name: str) -> str:
    """Domain names become directory names (`domain=<d>`), so only safe characters are allowed."""
    if not re.match(DOMAIN_NAME, name) or ".." in name:
        raise ValueError(f"domain {name!r} must be lower-case letters, digits, '_', '-' or '.'")
    return name


DomainName = Annotated[str, AfterValidator(check_domain_name)]

"""An input whose first records all fail to read is almost always a config mistake, not bad data.

A field map that names a key the records do not have (`fields: {text: body}`), or a format that is not
the file's (`format: warc` on JSON Lines), turns every record into an `unreadable` reject, and a run that
"succeeds" with nothing kept hides it. So the shard runner looks at the first batch of each input: if it
holds no document and every reject in it is `unreadable`, the run stops with one line naming the input,
the keys its first record has, and the fix. A few bad lines among good ones pass (the batch holds
documents); a file that cannot be opened at all stays one reject (an I/O fault, not a mapping mistake);
`allow_unreadable: true` on the input accepts such an input.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from curate.readers.batches import ShardSource
from curate.readers.compression import open_decoded
from curate.readers.opening import open_input
from curate.readers.records import ReadTally
from curate.schema import UNREADABLE

SNIFF_BYTES = 1 << 16  # enough for the keys of an ordinary first record; a longer line is not sniffed


def nothing_readable(docs: pa.Table, rejects: pa.Table, tally: ReadTally) -> bool:
    """True when a first batch holds no document and only `unreadable` rejects, from a file that opened."""
    if docs.num_rows or not rejects.num_rows or not tally.size:
        return False
    return bool(pc.all(pc.equal(rejects.column("reject_reason"), UNREADABLE)).as_py())


def describe_unreadable(shard: ShardSource, where: str, rejects: pa.Table) -> str:
    """One line: which input, what the first reject says, the keys its first record has, and the fix."""
    first_detail = rejects.column("reject_detail")[0].as_py().removeprefix(f"{shard.source}: ")
    keys = record_keys(rejects.column("text")[0].as_py()) or first_line_keys(shard.path)
    count = rejects.num_rows
    first = "its first record" if count == 1 else f"its first {count:,} records"
    head = f"{where} ({shard.source}): no document in {first} read as {shard.format}"
    if keys is None:
        seen = "its first record is not a JSON object"
        fix = "check `format:` (one of jsonl, parquet, warc, wet) and `fields:` for this input"
    else:
        seen = f"the first record has keys {', '.join(keys) or '(none)'}"
        if shard.format in ("jsonl", "parquet"):
            fix = "set `fields: {text: KEY}` on this input to the key that holds the text"
        else:
            fix = "set `format: jsonl` on this input (and `fields: {text: KEY}` if the text is not in `text`)"
    allow = "or `allow_unreadable: true` to accept an input with nothing readable"
    return f"{head} ({first_detail}); {seen}; {fix}, {allow}"


def record_keys(raw: str | None) -> list[str] | None:
    """The top-level keys of a rejected record kept as JSON (the JSONL and Parquet readers keep it so)."""
    if not raw:
        return None
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return list(record) if isinstance(record, dict) else None


def first_line_keys(path: Path) -> list[str] | None:
    """The keys of the file's first line read as JSON, whatever format was configured: a JSON Lines file
    read as WARC leaves no record to look at, but its first line says what it is."""
    try:
        with open_input(path) as handle:
            line = open_decoded(handle).readline(SNIFF_BYTES)
    except Exception:  # noqa: BLE001 - broken input can raise anything; a failed sniff shows no keys
        return None
    return record_keys(line.decode("utf-8", errors="replace"))

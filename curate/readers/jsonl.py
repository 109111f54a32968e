"""JSON Lines shards (plain, .gz, .zst): one JSON object per line, read as a stream of bytes.

Lines are decoded strictly: a line with invalid UTF-8 or broken JSON is a bad record at its line number,
and a truncated or corrupt compressed stream ends the file with one reject saying where; earlier lines
stand. A line longer than the reader's limit is never held whole: a prefix is kept for the reject and the
rest skipped in chunks, so one 200 MB line costs no more memory than the limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import orjson

from curate.readers.fields import FieldMap, first_present, remove_path
from curate.readers.records import RAW_KEEP_CHARS, BadRecord, RawDoc, ReadLimits, ReadTally
from curate.readers.stream import Cursor, read_stream
from curate.schema import TOO_LONG, UNREADABLE

UTF8_BOM = b"\xef\xbb\xbf"
SKIP_CHUNK = 1 << 20


def read_jsonl(
    handle: BinaryIO, fields: FieldMap, tally: ReadTally, limits: ReadLimits
) -> Iterator[RawDoc | BadRecord]:
    return read_stream(handle, tally, lambda stream, cursor: _lines(stream, cursor, fields, limits))


def _lines(stream: BinaryIO, cursor: Cursor, fields: FieldMap, limits: ReadLimits) -> Iterator:
    line_no = 0
    offset = 0
    while True:
        cursor.where, cursor.offset = f"line {line_no + 1}", offset
        line = stream.readline(limits.record_bytes + 1)
        if not line:
            return
        line_no += 1
        length = len(line)
        if len(line) > limits.record_bytes and not line.endswith(b"\n"):
            length += _skip_line(stream)
            yield _too_long_line(line, length, line_no, offset, limits)
        else:
            yield parse_line(line.removeprefix(UTF8_BOM) if line_no == 1 else line, line_no, offset, fields)
        offset += length


def _skip_line(stream: BinaryIO) -> int:
    """Read past the rest of an over-long line in bounded chunks; how many bytes were skipped."""
    skipped = 0
    while True:
        chunk = stream.readline(SKIP_CHUNK)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def _too_long_line(line: bytes, length: int, line_no: int, offset: int, limits: ReadLimits) -> BadRecord:
    detail = (
        f"line {line_no}: {length} bytes, longer than the reader's limit of {limits.record_bytes} bytes "
        f"(from max_doc_chars {limits.max_doc_chars}); raise max_doc_chars to read it"
    )
    raw = line[:RAW_KEEP_CHARS].decode("utf-8", errors="replace")
    return BadRecord(offset, TOO_LONG, detail, raw=raw)


def parse_line(line: bytes, line_no: int, offset: int, fields: FieldMap) -> RawDoc | BadRecord:
    stripped = line.strip()
    if not stripped:
        return BadRecord(offset, UNREADABLE, f"line {line_no}: blank line")
    try:
        record = orjson.loads(stripped)
    except orjson.JSONDecodeError as error:
        return _bad_line(line, line_no, offset, f"invalid JSON or UTF-8 ({error})")
    if not isinstance(record, dict):
        return _bad_line(line, line_no, offset, f"a JSON {type(record).__name__}, not an object")
    return record_to_doc(record, offset, fields, where=f"line {line_no}")


def record_to_doc(record: dict, offset: int, fields: FieldMap, where: str) -> RawDoc | BadRecord:
    """Map a decoded record onto document fields; shared by the JSONL and Parquet readers."""
    text_path, text = first_present(record, fields.text)
    if not isinstance(text, str):
        found = "no text field" if text_path is None else f"field {text_path!r} is not a string"
        detail = f"{where}: {found} (looked for {', '.join(fields.text)}; set `fields.text` for this input)"
        raw = orjson.dumps(record, default=str).decode()[:RAW_KEEP_CHARS]
        return BadRecord(offset, UNREADABLE, detail, raw=raw)
    id_path, doc_id = first_present(record, fields.id)
    url_path, url = first_present(record, fields.url)
    date_path, date = first_present(record, fields.crawl_date)
    for path in (text_path, id_path, url_path, date_path):
        if path is not None:
            remove_path(record, path)
    return RawDoc(
        offset=offset,
        text=text,
        id=None if doc_id is None else str(doc_id),
        url=url if isinstance(url, str) else None,
        date=date,
        meta=record,
        where=where,
    )


def _bad_line(line: bytes, line_no: int, offset: int, why: str) -> BadRecord:
    raw = line[:RAW_KEEP_CHARS].decode("utf-8", errors="replace")
    return BadRecord(offset, UNREADABLE, f"line {line_no}: {why}", raw=raw)

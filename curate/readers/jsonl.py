"""JSON Lines shards (plain, .gz, .zst): one JSON object per line, read as a stream of bytes.

Lines are decoded strictly: a line with invalid UTF-8 or broken JSON is a bad record at its line number,
and a truncated compressed stream ends the file with one bad record saying where; earlier lines stand.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from curate.readers.compression import STREAM_ERRORS, open_binary
from curate.readers.fields import FieldMap, first_present, remove_path
from curate.readers.records import BadRecord, RawDoc
from curate.schema import UNREADABLE

RAW_KEEP_LIMIT = 1 << 20  # bytes of a bad line kept in the reject, enough to diagnose it by eye


def read_jsonl(path: Path, fields: FieldMap) -> Iterator[RawDoc | BadRecord]:
    line_no = 0
    offset = 0
    with open_binary(path) as stream:
        try:
            for line in stream:
                line_no += 1
                yield parse_line(line, line_no, offset, fields)
                offset += len(line)
        except STREAM_ERRORS as error:
            yield BadRecord(
                offset=offset,
                reason=UNREADABLE,
                detail=f"line {line_no + 1}: compressed stream ends early or is corrupt ({error}); "
                "records after this point could not be read",
            )


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
        return BadRecord(offset, UNREADABLE, detail, raw=orjson.dumps(record).decode()[:RAW_KEEP_LIMIT])
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
    )


def _bad_line(line: bytes, line_no: int, offset: int, why: str) -> BadRecord:
    raw = line[:RAW_KEEP_LIMIT].decode("utf-8", errors="replace")
    return BadRecord(offset, UNREADABLE, f"line {line_no}: {why}", raw=raw)

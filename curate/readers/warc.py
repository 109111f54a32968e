"""WARC (HTTP responses, HTML to main text) and WET (extracted text) files, via FastWARC and Resiliparse.

HTML is decoded with the charset the server declared, else one Resiliparse detects, so Latin-1 or
Shift-JIS pages become text rather than rejects. Records that carry no document (requests, warcinfo,
metadata) are not documents and are not counted; responses that are not pages are rejects with a reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fastwarc.warc import ArchiveIterator, WarcRecord, WarcRecordType
from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from resiliparse.parse.html import HTMLTree

from curate.readers.compression import open_binary
from curate.readers.records import BadRecord, RawDoc
from curate.schema import UNREADABLE

DOCUMENT_RECORDS = WarcRecordType.response | WarcRecordType.conversion
TEXT_TYPES = ("text/html", "application/xhtml+xml", "text/plain")
RAW_KEEP_LIMIT = 1 << 20


def read_warc(path: Path) -> Iterator[RawDoc | BadRecord]:
    """Yields one item per document record; a stream that ends early adds one bad record saying where.

    Decompression is ours (not FastWARC's) because Python's gzip raises on a truncated member, where a
    native reader would end quietly and lose the tail of the file without a trace.
    """
    last_offset = 0
    with open_binary(path) as stream:
        try:
            for record in ArchiveIterator(stream, record_types=DOCUMENT_RECORDS, parse_http=True):
                last_offset = record.stream_pos
                yield record_to_item(record)
        except Exception as error:  # noqa: BLE001 - a corrupt archive ends with a reject, never a crash
            yield BadRecord(
                last_offset,
                UNREADABLE,
                f"after byte {last_offset} of the decompressed stream: archive truncated or corrupt "
                f"({error}); records after this point could not be read",
            )


def record_to_item(record: WarcRecord) -> RawDoc | BadRecord:
    offset = record.stream_pos
    url = (record.headers.get("WARC-Target-URI") or "").strip("<>") or None
    meta = {"warc_record_id": (record.headers.get("WARC-Record-ID") or "").strip("<>")}
    date = record.headers.get("WARC-Date")
    body = record.reader.read()
    if record.record_type == WarcRecordType.conversion:
        text = body.decode("utf-8", errors="replace")
        return RawDoc(offset, text, id=meta["warc_record_id"] or None, url=url, date=date, meta=meta)
    return _response_to_item(record, body, offset, url, date, meta)


def _response_to_item(
    record: WarcRecord, body: bytes, offset: int, url: str | None, date: str | None, meta: dict
) -> RawDoc | BadRecord:
    where = f"byte {offset} ({url})"
    if record.is_http:
        status = record.http_headers.status_code
        meta["http_status"] = status
        if status != 200:
            return BadRecord(offset, "http_status", f"{where}: HTTP status {status}", meta=meta)
        content_type = (record.http_content_type or "").lower()
    else:
        content_type = (record.headers.get("Content-Type") or "").lower()
    if content_type and not content_type.startswith(TEXT_TYPES):
        return BadRecord(offset, "unsupported_content", f"{where}: content type {content_type}", meta=meta)
    try:
        encoding = (record.http_charset if record.is_http else None) or detect_encoding(body)
        html = bytes_to_str(body, encoding)
        meta["charset"] = encoding
        text = extract_plain_text(HTMLTree.parse(html), main_content=True, list_bullets=True)
    except Exception as error:  # noqa: BLE001 - undecodable payload is a reject with its bytes kept
        raw = body[:RAW_KEEP_LIMIT].decode("utf-8", errors="replace")
        return BadRecord(offset, UNREADABLE, f"{where}: payload not decodable ({error})", raw=raw, meta=meta)
    return RawDoc(offset, text, id=meta["warc_record_id"] or None, url=url, date=date, meta=meta)

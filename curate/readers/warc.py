"""WARC (HTTP responses, HTML to main text) and WET (extracted text) files, via FastWARC and Resiliparse.

HTML is decoded with the charset the server declared if Python knows it, else one Resiliparse detects, so
Latin-1 or Shift-JIS pages become text rather than rejects. Records that carry no document (requests,
warcinfo, metadata) are not documents and are not counted; responses that are not pages are rejects with a
reason. Every record's block is read whole and compared with its Content-Length, so a file cut inside a
record is a `truncated` reject rather than a shorter page; a block above the read limit is skipped unread.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, Literal, get_args

from fastwarc.warc import ArchiveIterator, WarcRecord, WarcRecordType
from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from resiliparse.parse.html import HTMLTree

from curate.readers.fields import FieldMap
from curate.readers.records import RAW_KEEP_CHARS, BadRecord, RawDoc, ReadLimits, ReadTally
from curate.readers.stream import Cursor, read_stream
from curate.schema import TOO_LONG, TRUNCATED, UNREADABLE

DOCUMENT_RECORDS = (WarcRecordType.response, WarcRecordType.conversion)
TEXT_TYPES = ("text/html", "application/xhtml+xml", "text/plain")
SKIP_CHUNK = 1 << 20

Extractor = Literal["resiliparse", "trafilatura"]
EXTRACTORS: tuple[str, ...] = get_args(Extractor)
DEFAULT_EXTRACTOR: Extractor = "resiliparse"
# main_content drops navigation, headers, footers and link lists by Resiliparse's own rules; bullets keep
# list items apart as lines; alt texts and form fields stay (Resiliparse's defaults).
RESILIPARSE_OPTIONS: dict[str, Any] = {"main_content": True, "list_bullets": True}
# fast: no fallback pass through readability/jusText (on the 48 real pages of `curate bench extract` it gave
# the same text for 45 and the same F1, for 1.4x less CPU); comments are not main text; tables stay.
TRAFILATURA_OPTIONS: dict[str, Any] = {"fast": True, "include_comments": False, "include_tables": True}


HtmlToText = Callable[[str], str]


def html_to_text(extractor: Extractor) -> HtmlToText:
    """The chosen extractor as a function of a page's HTML. Trafilatura is imported here, only when chosen
    and in the process that reads: a missing package fails the reader before its first record instead of
    passing for a corrupt archive or turning every page into a reject."""
    if extractor == "trafilatura":
        import trafilatura  # noqa: F401 - lazy; the import error, if any, is raised here

        return _trafilatura_text
    return _resiliparse_text


def extract_main_text(html: str, extractor: Extractor = DEFAULT_EXTRACTOR) -> str:
    """The main text of an HTML page by the chosen extractor; "" when it finds none (an `empty` reject)."""
    return html_to_text(extractor)(html)


def _resiliparse_text(html: str) -> str:
    return extract_plain_text(HTMLTree.parse(html), **RESILIPARSE_OPTIONS)


def _trafilatura_text(html: str) -> str:
    import trafilatura  # already loaded by `html_to_text`: a dictionary look-up

    return trafilatura.extract(html, **TRAFILATURA_OPTIONS) or ""


def read_warc(
    handle: BinaryIO,
    _fields: FieldMap,
    tally: ReadTally,
    limits: ReadLimits,
    extractor: Extractor = DEFAULT_EXTRACTOR,
) -> Iterator[RawDoc | BadRecord]:
    """Yields one item per document record, plus one reject if the archive is cut or corrupt.

    Decompression is ours (not FastWARC's) because a native reader would end quietly at a cut gzip
    member and lose the tail of the file without a trace.
    """
    to_text = html_to_text(extractor)  # before the stream is read: its errors are not the input's
    return read_stream(handle, tally, lambda stream, cursor: _records(stream, cursor, limits, to_text))


def _records(
    stream: BinaryIO, cursor: Cursor, limits: ReadLimits, to_text: HtmlToText
) -> Iterator[RawDoc | BadRecord]:
    for record in ArchiveIterator(stream, parse_http=False):
        offset = record.stream_pos
        cursor.where, cursor.offset = f"after byte {offset} of the decompressed stream", offset
        is_document = record.record_type in DOCUMENT_RECORDS
        if record.content_length > limits.record_bytes or not is_document:
            length = _skip_block(record)
            if length < record.content_length:
                yield _cut_record(record, length, b"")
                return
            if is_document:
                yield _too_long_record(record, limits)
            continue
        block = record.reader.read()
        if len(block) < record.content_length:
            yield _cut_record(record, len(block), block)
            return
        record.set_bytes_content(block)
        yield record_to_item(record, block, to_text)


def _skip_block(record: WarcRecord) -> int:
    """Read past a record's block in bounded chunks; its length as found in the file."""
    length = 0
    while chunk := record.reader.read(SKIP_CHUNK):
        length += len(chunk)
    return length


def _cut_record(record: WarcRecord, length: int, block: bytes) -> BadRecord:
    detail = (
        f"byte {record.stream_pos} of the decompressed stream: the file ends inside a "
        f"{_type_name(record)} record ({length} of {record.content_length} bytes); archive truncated"
    )
    raw = block[:RAW_KEEP_CHARS].decode("utf-8", errors="replace")
    return BadRecord(record.stream_pos, TRUNCATED, detail, raw=raw, covers_rest=True)


def _too_long_record(record: WarcRecord, limits: ReadLimits) -> BadRecord:
    url = _target(record)
    detail = (
        f"byte {record.stream_pos} ({url}): record of {record.content_length} bytes, longer than the "
        f"reader's limit of {limits.record_bytes} bytes (from max_doc_chars {limits.max_doc_chars})"
    )
    return BadRecord(record.stream_pos, TOO_LONG, detail, meta={"warc_record_id": _record_id(record)})


def _type_name(record: WarcRecord) -> str:
    return str(record.record_type).rsplit(".", 1)[-1]


def _target(record: WarcRecord) -> str | None:
    return (record.headers.get("WARC-Target-URI") or "").strip("<>") or None


def _record_id(record: WarcRecord) -> str:
    return (record.headers.get("WARC-Record-ID") or "").strip("<>")


def record_to_item(
    record: WarcRecord, block: bytes, to_text: HtmlToText = _resiliparse_text
) -> RawDoc | BadRecord:
    offset = record.stream_pos
    url = _target(record)
    meta = {"warc_record_id": _record_id(record)}
    date = record.headers.get("WARC-Date")
    where = f"byte {offset} ({url})"
    if record.record_type == WarcRecordType.conversion:
        text = block.decode("utf-8", errors="replace")
        return RawDoc(offset, text, meta["warc_record_id"] or None, url, date, meta, where)
    record.parse_http()
    body = record.reader.read()
    return _response_to_item(record, body, offset, url, date, meta, to_text)


def _response_to_item(
    record: WarcRecord,
    body: bytes,
    offset: int,
    url: str | None,
    date: str | None,
    meta: dict,
    to_text: HtmlToText,
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
        encoding = response_charset(record, body)
        html = bytes_to_str(body, encoding)
    except Exception as error:  # noqa: BLE001 - undecodable payload is a reject with its bytes kept
        return _unreadable(offset, f"{where}: payload not decodable ({error})", body, meta)
    meta["charset"] = encoding
    try:
        text = to_text(html)
    except Exception as error:  # noqa: BLE001 - a page the extractor fails on is a reject with its bytes kept
        return _unreadable(offset, f"{where}: HTML extraction failed ({error})", body, meta)
    return RawDoc(offset, text, meta["warc_record_id"] or None, url, date, meta, where)


def _unreadable(offset: int, detail: str, body: bytes, meta: dict) -> BadRecord:
    raw = body[:RAW_KEEP_CHARS].decode("utf-8", errors="replace")
    return BadRecord(offset, UNREADABLE, detail, raw=raw, meta=meta)


def response_charset(record: WarcRecord, body: bytes) -> str:
    """The charset a response's HTML is decoded with: the declared one if Python knows it, else detected."""
    return _known_charset(record.http_charset if record.is_http else None) or detect_encoding(body)


def _known_charset(declared: str | None) -> str | None:
    """The declared charset if Python can decode it; an unknown name (`x-foo`) falls back to detection."""
    if not declared:
        return None
    try:
        codecs.lookup(declared)
    except LookupError:
        return None
    return declared

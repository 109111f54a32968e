"""Which reader reads a file: by `format:` in the config, else by the file name's extension; and the one
place a file is opened for reading (confined to the data roots, hashed through the same descriptor)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO, Literal

from curate.checksums import handle_sha256
from curate.readers.compression import strip_compression_suffix
from curate.readers.fields import FieldMap
from curate.readers.jsonl import read_jsonl
from curate.readers.opening import HashingReader, open_input, opened_size
from curate.readers.parquet import read_parquet
from curate.readers.records import BadRecord, RawDoc, ReadLimits, ReadTally
from curate.readers.warc import DEFAULT_EXTRACTOR, Extractor, read_warc
from curate.schema import UNREADABLE
from curate.storage import is_remote

Format = Literal["jsonl", "parquet", "warc", "wet"]
FORMATS: tuple[str, ...] = ("jsonl", "parquet", "warc", "wet")

_EXTENSIONS: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".warc": "warc",
    ".arc": "warc",
    ".wet": "wet",
}


def infer_format(path: Path) -> Format | None:
    name = strip_compression_suffix(path.name.lower())
    if name.endswith(".warc.wet"):
        return "wet"
    for extension, fmt in _EXTENSIONS.items():
        if name.endswith(extension):
            return fmt
    return None


# A format reader takes the opened file, fills in the tally as it goes and yields one item per record.
FormatReader = Callable[[BinaryIO, FieldMap, ReadTally, ReadLimits], Iterator[RawDoc | BadRecord]]


def format_reader(fmt: Format, extractor: Extractor = DEFAULT_EXTRACTOR) -> FormatReader:
    """The reader of a format; `extractor` (HTML to main text) matters only to WARC responses."""
    if fmt == "jsonl":
        return read_jsonl
    if fmt == "parquet":
        return read_parquet
    return partial(read_warc, extractor=extractor)


READ_BUFFER = 1 << 20


def read_file(
    path: Path,
    fmt: Format,
    fields: FieldMap,
    tally: ReadTally,
    limits: ReadLimits,
    data_roots: tuple[str, ...] = (),
    checksum: bool = True,
    extractor: Extractor = DEFAULT_EXTRACTOR,
) -> Iterator[RawDoc | BadRecord]:
    """Open the file (confined to `data_roots` when given), hash it through the same descriptor, read it.

    A file that cannot be opened (permissions, gone, outside the roots) is one `unreadable` reject.
    """
    try:
        handle = open_input(path, data_roots)
    except OSError as error:
        yield BadRecord(0, UNREADABLE, f"cannot open the file ({error})", covers_rest=True)
        return
    with handle:
        # on an object store the records and the checksum come from one download
        hashing = HashingReader(handle) if checksum and is_remote(path) else None
        try:
            tally.size = opened_size(handle)
            tally.sha256 = handle_sha256(handle) if checksum and hashing is None else ""
        except OSError as error:
            yield BadRecord(0, UNREADABLE, f"cannot read the file ({error})", covers_rest=True)
            return
        stream = io.BufferedReader(hashing, READ_BUFFER) if hashing is not None else handle
        yield from format_reader(fmt, extractor)(stream, fields, tally, limits)
        if hashing is not None:
            tally.sha256 = hashing.hexdigest()


def reader_for(fmt: Format) -> Callable[[Path, FieldMap], Iterator[RawDoc | BadRecord]]:
    """Records of a file by path, for tools outside a run (corpora, perplexity, proxy targets); a run
    reads through `read_batches`, which also checks that the file was accounted for."""
    return lambda path, fields: read_file(path, fmt, fields, ReadTally(), ReadLimits(), checksum=False)

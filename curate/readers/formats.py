"""Which reader reads a file: by `format:` in the config, else by the file name's extension."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Literal

from curate.readers.compression import strip_compression_suffix
from curate.readers.fields import FieldMap
from curate.readers.jsonl import read_jsonl
from curate.readers.parquet import read_parquet
from curate.readers.records import BadRecord, RawDoc, ReadLimits, ReadTally
from curate.readers.warc import read_warc

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


# A reader takes the opened file, fills in the tally as it goes and yields one item per record.
Reader = Callable[[BinaryIO, FieldMap, ReadTally, ReadLimits], Iterator[RawDoc | BadRecord]]


def reader_for(fmt: Format) -> Reader:
    if fmt == "jsonl":
        return read_jsonl
    if fmt == "parquet":
        return read_parquet
    return read_warc

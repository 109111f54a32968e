"""Open plain, gzip or zstd files as one binary stream, chosen by magic bytes rather than by name.

Shards in the wild are misnamed (`.json.gz` that is plain, `.jsonl` that is zstd); the first bytes don't lie.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import BinaryIO

import zstandard

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESSION_SUFFIXES = (".gz", ".zst", ".zstd")

# Errors a truncated or corrupt compressed stream raises midway through a file.
STREAM_ERRORS = (EOFError, OSError, zstandard.ZstdError, gzip.BadGzipFile)


def sniff(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def open_binary(path: Path) -> BinaryIO:
    kind = sniff(path)
    if kind == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if kind == "zstd":
        raw = open(path, "rb")  # noqa: SIM115 - closed by the wrapping reader
        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader, buffer_size=1 << 20)  # type: ignore[arg-type]
    return open(path, "rb")  # noqa: SIM115 - the caller closes it


def strip_compression_suffix(name: str) -> str:
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name

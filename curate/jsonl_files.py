"""Writing JSON Lines shards (plain, .gz or .zst by the file name), for the demo, tests and benchmarks.

Writes are atomic (a temporary name, then a rename) and byte-stable (gzip's mtime is 0), so building the
same shards twice gives the same files, and a killed build leaves no half shard behind.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import zstandard


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as raw, _compressed(raw, path.name) as handle:
        for record in records:
            handle.write(orjson.dumps(record) + b"\n")
    tmp.replace(path)


def _compressed(raw: BinaryIO, name: str) -> AbstractContextManager:
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)
    if name.endswith((".zst", ".zstd")):
        return zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False)
    return open(raw.fileno(), "wb", closefd=False)

"""One pass for records and checksum: whatever order a reader reads in, the digest is the file's."""

from __future__ import annotations

import hashlib
import io
import random

from curate.readers.opening import HashingReader


class CountingBytes(io.BytesIO):
    """An in-memory file that counts the bytes read from it (a download, on an object store)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


def test_sequential_reads_are_hashed_on_the_way() -> None:
    data = random.Random(0).randbytes(3_000_000)
    inner = CountingBytes(data)
    hashing = HashingReader(inner)
    stream = io.BufferedReader(hashing, 1 << 16)
    assert b"".join(iter(lambda: stream.readline(4096), b"")) == data
    assert hashing.hexdigest() == hashlib.sha256(data).hexdigest()
    assert inner.bytes_read == len(data), "nothing is read twice"


def test_seeks_and_a_stop_before_the_end_still_give_the_files_digest() -> None:
    data = random.Random(1).randbytes(500_000)
    inner = CountingBytes(data)
    hashing = HashingReader(inner)
    stream = io.BufferedReader(hashing, 4096)
    stream.seek(-1000, io.SEEK_END)  # a footer first, as Parquet readers do
    assert stream.read() == data[-1000:]
    stream.seek(100)
    assert stream.read(50_000) == data[100:50_100]
    stream.seek(0)
    assert stream.read(10_000) == data[:10_000]  # now in order from the start: hashed as it passes
    assert hashing.hexdigest() == hashlib.sha256(data).hexdigest()

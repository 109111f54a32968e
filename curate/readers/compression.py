"""Decode plain, gzip or zstd input as one binary stream, chosen by magic bytes rather than by name.

Shards in the wild are misnamed (`.json.gz` that is plain, `.jsonl` that is zstd); the first bytes don't lie.
Every way a stream can end early must raise, never end quietly: gzip raises EOFError on a cut member, and
for zstd (whose stream reader reaches end of input without a word) the frame structure is walked at the
end to find an unfinished frame.
"""

from __future__ import annotations

import gzip
import io
from typing import BinaryIO

import zstandard

from curate.readers.opening import opened_size
from curate.readers.zstd_frames import unfinished_frame_at
from curate.schema import TRUNCATED, UNREADABLE

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESSION_SUFFIXES = (".gz", ".zst", ".zstd")


class TruncatedInput(EOFError):
    """The compressed stream stops inside a member or frame: the rest of the file is missing."""


def sniff(handle: BinaryIO) -> str:
    head = handle.read(4)
    handle.seek(0)
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def open_decoded(handle: BinaryIO) -> BinaryIO:
    """The decompressed content of an open input file, as a buffered binary stream."""
    kind = sniff(handle)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        return io.BufferedReader(ZstdStream(handle), buffer_size=1 << 20)  # type: ignore[return-value]
    return handle


class ZstdStream(io.RawIOBase):
    """zstd frames one after another, raising TruncatedInput at the end if the last frame is unfinished."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False)
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        count = self.reader.readinto(buffer)
        if count == 0:
            self._check_frames_complete()
        self.position += count
        return count

    def tell(self) -> int:
        return self.position

    def seekable(self) -> bool:
        return False

    def _check_frames_complete(self) -> None:
        size = opened_size(self.raw)
        cut = unfinished_frame_at(self.raw, size)
        if cut is not None:
            raise TruncatedInput(
                f"zstd frame starting at byte {cut} of {size} is unfinished (file cut short)"
            )


def stream_failure(error: BaseException) -> tuple[str, str]:
    """(reason, description) for whatever a decompressor or parser raised on broken input."""
    reason = TRUNCATED if isinstance(error, EOFError) else UNREADABLE
    text = str(error) or type(error).__name__
    return reason, f"{type(error).__name__}: {text}"


def is_input_error(error: BaseException) -> bool:
    """Errors broken input can raise: any Exception, and the PanicException of Rust extensions (FastWARC),
    which derives from BaseException; never KeyboardInterrupt, SystemExit or GeneratorExit."""
    return isinstance(error, Exception) or type(error).__name__ == "PanicException"


def strip_compression_suffix(name: str) -> str:
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name

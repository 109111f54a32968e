"""Walk the frame and block headers of a zstd file (no decompression) to find where it stops being whole.

python-zstandard's stream reader returns end-of-data when its input ends inside a frame, so a cut file
would otherwise just look shorter. The walk reads 3 bytes per block (blocks are at most 128 KiB), so it
costs a few seeks per megabyte, and only runs once the decoder has reached the end of the file.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from typing import BinaryIO

ZSTD_FRAME_MAGIC = 0xFD2FB528
SKIPPABLE_MASK, SKIPPABLE_MAGIC = 0xFFFFFFF0, 0x184D2A50
RAW, RLE, COMPRESSED = 0, 1, 2
_FCS_BYTES = (0, 2, 4, 8)
_DICT_ID_BYTES = (0, 1, 2, 4)


class NotZstd(ValueError):
    """Bytes where a frame should start that are not a zstd or skippable frame."""


def unfinished_frame_at(handle: BinaryIO, size: int) -> int | None:
    """The offset of a frame that the file ends inside of, or None if every frame is complete.

    Raises NotZstd for bytes between frames that are no frame at all (the decoder normally catches these).
    """
    read_at = _positional_reader(handle)
    offset = 0
    while offset < size:
        end = _frame_end(read_at, offset, size)
        if end is None or end > size:
            return offset
        offset = end
    return None


ReadAt = Callable[[int, int], bytes]  # (count, offset) -> up to count bytes


def _positional_reader(handle: BinaryIO) -> ReadAt:
    """pread on a local file; on a file without a descriptor (an object-store file), seek and read, then
    seek back: the caller's position is how many bytes the decoder took in (the file's accounting)."""
    try:
        fd = handle.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):

        def read_at(count: int, offset: int) -> bytes:
            position = handle.tell()
            handle.seek(offset)
            try:
                return handle.read(count)
            finally:
                handle.seek(position)

        return read_at
    return lambda count, offset: os.pread(fd, count, offset)


def _frame_end(read_at: ReadAt, start: int, size: int) -> int | None:
    """Where the frame starting at `start` ends (possibly past `size`), None if its headers are cut."""
    head = read_at(14, start)
    if len(head) < 4:
        return None
    (magic,) = struct.unpack_from("<I", head)
    if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC:
        if len(head) < 8:
            return None
        return start + 8 + struct.unpack_from("<I", head, 4)[0]
    if magic != ZSTD_FRAME_MAGIC:
        raise NotZstd(f"byte {start}: not a zstd frame (magic {head[:4].hex()})")
    if len(head) < 5:
        return None
    descriptor = head[4]
    single_segment = bool(descriptor & 0x20)
    fcs_flag = descriptor >> 6
    fcs = 1 if fcs_flag == 0 and single_segment else _FCS_BYTES[fcs_flag]
    header = 5 + (0 if single_segment else 1) + _DICT_ID_BYTES[descriptor & 0x3] + fcs
    end = _blocks_end(read_at, start + header, size)
    if end is None:
        return None
    return end + (4 if descriptor & 0x4 else 0)


def _blocks_end(read_at: ReadAt, offset: int, size: int) -> int | None:
    while True:
        raw = read_at(3, offset)
        if len(raw) < 3:
            return None
        header = int.from_bytes(raw, "little")
        last, kind, block_size = header & 1, (header >> 1) & 3, header >> 3
        offset += 3 + (1 if kind == RLE else block_size)
        if offset > size:
            return None
        if last:
            return offset

"""The one way an input file is opened, by the reader and for its checksum alike.

Confinement holds at open time, not only when a job starts: the file is opened first and then the path
of the descriptor actually obtained is checked against the data roots, so a shard swapped for a symlink
to a file outside the roots between planning and reading is refused without a byte of it being read.
An object store has no symlinks: there the URL itself, with no `.` or `..` segment, must lie under a
root given as a URL of the same store.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import stat
from typing import BinaryIO

from curate.storage import Location, is_remote, is_url

OUTSIDE_ROOTS = "outside the data roots"


class RefusedInput(OSError):
    """An input the confinement rules refuse to read (its message is the reject's detail)."""


def open_input(path: Location, data_roots: tuple[str, ...] = ()) -> BinaryIO:
    """Open `path` for binary reading; with `data_roots`, only if what was opened lies inside one of them.

    O_NONBLOCK keeps a FIFO planted in place of a shard from hanging the open; only regular files are read.
    """
    if is_remote(path):
        return _open_object(path, data_roots)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RefusedInput(f"{path} is not a regular file")
        if data_roots and not _inside(_descriptor_path(fd), data_roots):
            raise RefusedInput(f"{path} resolves {OUTSIDE_ROOTS}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_object(path: Location, data_roots: tuple[str, ...]) -> BinaryIO:
    url = str(path)
    if data_roots and not url_inside(url, data_roots):
        raise RefusedInput(f"{url} is {OUTSIDE_ROOTS}")
    # buffered like a local file, so readers get the full io API (e.g. readline with a limit)
    return io.BufferedReader(path.open("rb", block_size=8 << 20), buffer_size=1 << 20)


def opened_size(handle: BinaryIO) -> int:
    """The size of the file behind an open handle: fstat on a disk, the object's size on a store."""
    try:
        return os.fstat(handle.fileno()).st_size
    except (OSError, AttributeError, io.UnsupportedOperation):
        return int(getattr(handle, "raw", handle).size)  # fsspec's files know their size


def url_inside(url: str, roots: tuple[str, ...]) -> bool:
    """`url` lies under one of the URL `roots` (same scheme and bucket), with no segment that climbs."""
    scheme, _, rest = url.partition("://")
    if any(part in (".", "..") for part in rest.split("/")) or posixpath.normpath(rest) != rest.rstrip("/"):
        return False
    for root in roots:
        if not is_url(root):
            continue
        root_scheme, _, root_rest = root.partition("://")
        prefix = root_rest.rstrip("/") + "/"
        if root_scheme == scheme and (rest + "/").startswith(prefix):
            return True
    return False


def _descriptor_path(fd: int) -> str:
    """Where the open descriptor really points (symlinks resolved by the kernel, not by us)."""
    return os.readlink(f"/proc/self/fd/{fd}")


def _inside(real: str, roots: tuple[str, ...]) -> bool:
    for root in roots:
        if is_url(root):
            continue
        resolved = os.path.realpath(root)
        if os.path.commonpath([real, resolved]) == resolved:
            return True
    return False


class HashingReader(io.RawIOBase):
    """A file read once for its records and its checksum together: bytes read in order from the start
    are hashed as they pass; whatever a reader skipped (a seek ahead, a footer read first) is read again
    and hashed by `hexdigest()`. Why: on an object store a separate checksum pass is a second download.
    Wrap it in `io.BufferedReader` to give readers the whole file API."""

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self.inner = inner
        self.digest = hashlib.sha256()
        self.hashed = 0  # bytes [0, hashed) are in the digest
        self.position = inner.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self.inner.seekable()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(buffer))
        buffer[: len(data)] = data
        if self.position == self.hashed:
            self.digest.update(data)
            self.hashed += len(data)
        self.position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = self.inner.seek(offset, whence)
        return self.position

    def tell(self) -> int:
        return self.position

    @property
    def size(self) -> int:
        """The file's size, for `opened_size` (a zstd reader checks the last frame against it)."""
        return opened_size(self.inner)

    def hexdigest(self) -> str:
        """The file's sha256; reads (again) only what was not hashed on the way."""
        self.inner.seek(self.hashed)
        for block in iter(lambda: self.inner.read(1 << 20), b""):
            self.digest.update(block)
            self.hashed += len(block)
        self.position = self.hashed
        return self.digest.hexdigest()

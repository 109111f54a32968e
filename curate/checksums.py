"""File checksums recorded in manifests and cards, so an input or model is never silently swapped."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return handle_sha256(handle)


def handle_sha256(handle: BinaryIO) -> str:
    """Of an already opened file, from its start: inputs are hashed through the same descriptor they
    are read from (see curate.readers.opening), so the checksum is of the bytes actually read."""
    handle.seek(0)
    digest = hashlib.file_digest(handle, "sha256").hexdigest()
    handle.seek(0)
    return digest

"""Long texts in windows cut at whitespace, so per-character work stays a few MB whatever the document.

Stages and dedup kernels that never look across whitespace (words, tokens, word counts, lowercasing for
an exact-dedup key) give the same answer on the windows of a text as on the whole text, while their
per-character arrays (code points, class bits, masks) only ever cover one window. A window ends just
before a whitespace character (`str.isspace`, which is what Python's `\\s` matches in a `str` pattern),
so no word is ever cut; a run of more than `size` characters without whitespace stays one window.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
from collections.abc import Iterator
from functools import cache

WINDOW_CHARS = 1 << 20
"""~1 M characters: large enough that Python and NumPy call overheads vanish, small enough to stay cheap."""

_WHITESPACE = re.compile(r"\s")


def whitespace_windows(text: str, size: int = WINDOW_CHARS) -> Iterator[tuple[int, int]]:
    """[start, stop) spans covering `text` in order; every inner cut is at a whitespace character."""
    start = 0
    while len(text) - start > size:
        match = _WHITESPACE.search(text, start + size)
        if match is None:
            break
        yield start, match.start()
        start = match.start()
    yield start, len(text)


def release_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's malloc_trim; a no-op elsewhere).

    Window-sized temporaries (a few MB each) are served from the heap once glibc has raised its mmap
    threshold, and freed heap pages stay resident: after a long document's windows, that is hundreds of
    MB that every later step would carry on top of its own peak.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    library = ctypes.CDLL(name) if name else None
    return getattr(library, "malloc_trim", None)

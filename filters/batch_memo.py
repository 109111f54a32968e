"""A per-process memo of values derived from one batch's text column, shared by the filter stages.

Why: in an annotate chain the perplexity, harmful_ppl, toxicity and quality stages all need the same CCNet
normalisation of the same `text` column, and quality's ensemble needs the very perplexities the perplexity
stage just computed with the same KenLM model. Each stage stays standalone (it computes what is missing),
but a value already derived from the same input is reused instead of recomputed.

"The same input" is proved, not guessed: an Arrow array's buffers are immutable, and the memo keeps a
reference to the array it keyed, so those buffers cannot be freed and their addresses cannot be reused
while the entry lives. Two arrays with the same type, offsets, lengths and buffer addresses therefore hold
the same bytes. A key may add more (e.g. the loaded model object, also kept alive by the entry). Only the
last few batches are kept (`MAX_ENTRIES`), so a worker holds at most that many derived columns.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import pyarrow as pa

T = TypeVar("T")
MAX_ENTRIES = 8
"""Entries over all kinds: a chain derives ~5 values per batch, so this spans the current batch and the
previous one, and bounds the memory held to a couple of batches' derived columns."""

_entries: OrderedDict[Hashable, tuple[tuple[Any, ...], Any]] = OrderedDict()
_lock = threading.Lock()  # stages of a threaded executor share the process


def array_identity(array: pa.Array | pa.ChunkedArray) -> tuple:
    """Type, offset, length and buffer addresses of every chunk: equal only for the same bytes while the
    arrays are alive (see the module docstring)."""
    chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    return tuple(
        (str(chunk.type), chunk.offset, len(chunk), tuple(b.address if b else 0 for b in chunk.buffers()))
        for chunk in chunks
    )


def memoized(kind: str, array: pa.Array | pa.ChunkedArray, extra: tuple, compute: Callable[[], T]) -> T:
    """`compute()`'s value for (`kind`, this very array, `extra`), computed once while the entry lives.
    `extra` holds the other inputs (objects are kept alive with the entry, so their ids stay unique)."""
    key = (kind, array_identity(array), tuple(id(x) if _by_identity(x) else x for x in extra))
    with _lock:
        hit = _entries.get(key)
        if hit is not None:
            _entries.move_to_end(key)
            return hit[1]
    value = compute()  # outside the lock: two threads may both compute, never read a half-made entry
    with _lock:
        _entries[key] = ((array, *extra), value)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
    return value


def _by_identity(value: Any) -> bool:
    return not isinstance(value, str | int | float | bool | type(None))


def clear() -> None:
    """Forget every entry (tests use it to compute a reference without reuse)."""
    with _lock:
        _entries.clear()

"""What a reader yields per input record: a document, or a bad record that becomes an `unreadable` reject.

Readers stay format-specific and tiny; turning records into Arrow batches, ids and dates is shared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawDoc:
    offset: int
    text: str
    id: str | None = None
    url: str | None = None
    date: Any = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class BadRecord:
    """A record that could not be read. `raw` keeps whatever bytes we had, so nothing is lost."""

    offset: int
    reason: str
    detail: str
    raw: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

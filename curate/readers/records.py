"""What a reader yields per input record (a document, or a bad record that becomes a reject), and what it
saw of the file as a whole (the tally the shard runner checks, so a reader that stops early cannot hide).

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
    where: str = ""  # "line 12", "row 7", "byte 3100 (url)": where a later read-stage reject points


@dataclass
class BadRecord:
    """A record that could not be read. `raw` keeps whatever bytes we had, so nothing is lost.

    `covers_rest` marks the reject that stands for everything after it in the file (a truncated or
    corrupt stream): the file's accounting accepts unread bytes only when such a reject was made.
    """

    offset: int
    reason: str
    detail: str
    raw: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    covers_rest: bool = False


@dataclass
class ReadTally:
    """What the reader saw of one input file; recorded in the shard's completion record and manifest.

    `consumed` counts bytes of the file (compressed, as on disk) the decoder took in; `clean_end` is True
    only when the decoder itself reached the end of the file without error (complete gzip members and
    zstd frames, the WARC stream drained, every Parquet row group read). `expected` is the record count
    the format declares (Parquet footers), else None.
    """

    size: int = 0
    consumed: int = 0
    records: int = 0
    expected: int | None = None
    clean_end: bool = False
    lost_tail: str | None = None  # reason of the reject covering what was not read, if any
    sha256: str = ""

    @classmethod
    def from_figures(cls, figures: dict[str, Any]) -> ReadTally:
        """Back from the figures a completion record or manifest carries, to check them again."""
        return cls(
            size=figures["input_bytes"],
            consumed=figures["input_bytes_read"],
            records=figures["records_parsed"],
            expected=figures["records_expected"],
            clean_end=figures["clean_end"],
            lost_tail=figures["lost_tail"],
        )

    def figures(self) -> dict[str, Any]:
        return {
            "input_bytes": self.size,
            "input_bytes_read": self.consumed,
            "records_parsed": self.records,
            "records_expected": self.expected,
            "clean_end": self.clean_end,
            "lost_tail": self.lost_tail,
        }

    def problem(self) -> str | None:
        """Why this file is not fully accounted for, or None when it is."""
        if self.expected is not None:  # the format counts its records: they are what must add up
            if self.records != self.expected:
                return f"{self.records} records parsed but the file declares {self.expected}"
            return None
        if self.lost_tail is not None:
            return None
        if not self.clean_end:
            return f"the reader stopped at byte {self.consumed} of {self.size} without a reject saying why"
        if self.consumed < self.size:
            return f"only {self.consumed} of {self.size} bytes were read and no reject covers the rest"
        return None


RAW_KEEP_CHARS = 1 << 20  # of a rejected record, enough to diagnose it by eye without holding all of it
JSON_BYTES_PER_CHAR = 6  # `json.dumps` writes each non-ASCII BMP character as a 6-byte \uXXXX escape
RECORD_SLACK_BYTES = 1 << 20  # room for the other fields of a record (url, metadata) beside its text


@dataclass(frozen=True)
class ReadLimits:
    """How big a document the read stage lets through, so no later stage ever holds more.

    A record is only parsed if its raw bytes fit in `record_bytes`: a text of `max_doc_chars` characters
    takes at most 4 bytes a character as UTF-8 and 6 as JSON escapes of the Basic Multilingual Plane (what
    `json.dumps` writes by default), plus slack for the other fields. Only text escaped as astral-plane
    surrogate pairs (12 bytes a character) can exceed it below `max_doc_chars`; such a line is rejected
    as `too_long` too, never read unbounded.
    """

    max_doc_chars: int = 5_000_000

    @property
    def record_bytes(self) -> int:
        return self.max_doc_chars * JSON_BYTES_PER_CHAR + RECORD_SLACK_BYTES

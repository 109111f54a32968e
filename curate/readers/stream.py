"""Reading a compressed or plain byte stream to its end, turning any failure on the way into one reject.

Shared by the JSONL and WARC readers: the parser yields records and keeps a cursor saying where it is;
whatever the decoder or parser raises (zlib.error, EOFError, ZstdError, FastWARC's OSError or panic)
ends the file with a `truncated` or `unreadable` reject covering the rest, never a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from curate.readers.compression import is_input_error, open_decoded, stream_failure
from curate.readers.records import BadRecord, RawDoc, ReadTally


@dataclass
class Cursor:
    """Where the parser is in the decompressed stream: the next record's place, for a failure reject."""

    where: str = "start of file"
    offset: int = 0


Parser = Callable[[BinaryIO, Cursor], Iterator[RawDoc | BadRecord]]


def read_stream(handle: BinaryIO, tally: ReadTally, parse: Parser) -> Iterator[RawDoc | BadRecord]:
    cursor = Cursor()
    try:
        yield from parse(open_decoded(handle), cursor)  # the caller closes `handle`, which is all it holds
        tally.clean_end = True
    except BaseException as error:
        if not is_input_error(error):
            raise
        reason, text = stream_failure(error)
        yield BadRecord(
            offset=cursor.offset,
            reason=reason,
            detail=f"{cursor.where}: compressed stream ends early or is corrupt ({text}) at about byte "
            f"{_position(handle)} of {tally.size}; records after this point could not be read",
            covers_rest=True,
        )
    finally:
        tally.consumed = _position(handle)


def _position(handle: BinaryIO) -> int:
    return handle.tell()

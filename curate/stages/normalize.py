"""normalize: one canonical form of the text before anything scores or hashes it.

NFC, control and zero-width characters out, unicode spaces to plain spaces, trailing spaces and runs of
blank lines trimmed. Leading indentation is kept on purpose: code and poetry depend on it. NFC is checked
per document (quick check first); the rest is one compiled pass over the batch's bytes
(`normalize_kernel`). `ftfy` (mojibake repair) is optional and per document.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.stages.base import Stage, StageParams, StageResult, set_columns
from curate.stages.normalize_kernel import may_change_under, normalize_whitespace
from curate.stages.registry import register
from curate.textwindows import WINDOW_CHARS

EMPTY_REASON = "empty"


class NormalizeParams(StageParams):
    form: Literal["NFC", "NFKC"] = "NFC"
    strip_control: bool = True
    unify_spaces: bool = True
    collapse_spaces: bool = True
    max_blank_lines: int = Field(default=1, ge=0)
    ftfy: bool = False


@register
class Normalize(Stage):
    name = "normalize"
    Params = NormalizeParams
    params: NormalizeParams
    drops = {EMPTY_REASON: "nothing but whitespace and removed characters is left"}

    def setup(self) -> None:
        normalize_text(pa.array(["a\u0301  b\r\n"]), self.params)  # loads (or compiles) the kernels once

    def process(self, batch: pa.Table) -> StageResult:
        text = normalize_text(batch.column("text").combine_chunks(), self.params)
        empty = pc.equal(pc.utf8_length(text), 0)
        reasons = pc.if_else(empty, pa.scalar(EMPTY_REASON), pa.scalar(None, pa.string()))
        return StageResult(set_columns(batch, {"text": text}), reasons)


def normalize_text(text: pa.Array, params: NormalizeParams) -> pa.Array:
    """The canonical form of every text of the array; a text longer than a window is normalised window
    by window (see `_normalize_long`), so its memory is a few times its size, not dozens."""
    if params.ftfy:
        text = _ftfy(text)
    long_rows = np.flatnonzero(
        pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False) > WINDOW_CHARS
    )
    if not len(long_rows):
        return _normalize_rows(text, params)
    mask = np.zeros(len(text), dtype=bool)
    mask[long_rows] = True
    short = _normalize_rows(pc.if_else(pa.array(mask), pa.scalar("", text.type), text), params)
    longs = pa.concat_arrays([_normalize_long(text[int(row)], params).cast(text.type) for row in long_rows])
    return pc.replace_with_mask(short, pa.array(mask), longs)


def _normalize_rows(text: pa.Array, params: NormalizeParams, trim: bool = True) -> pa.Array:
    text = unicode_normalize(text, params.form)
    text = normalize_whitespace(
        text, params.strip_control, params.unify_spaces, params.collapse_spaces, params.max_blank_lines + 1
    )
    return pc.utf8_trim_whitespace(text) if trim else text


def _normalize_long(value: pa.Scalar, params: NormalizeParams) -> pa.Array:
    """One long text normalised in windows cut just after a newline that a letter or digit follows.

    Every step gives the same result on such windows as on the whole text: NFC/NFKC never composes or
    reorders across a newline (a starter that composes with nothing), no replaced pattern holds a newline
    in its middle, and a run of newlines or trailing spaces always ends before the cut. Only the final
    trim belongs to the whole text, so it runs once on the joined windows.
    """
    data = memoryview(value.as_buffer())
    parts = [
        _normalize_rows(pa.array([str(data[start:stop], "utf-8")], pa.large_string()), params, trim=False)
        for start, stop in line_windows(data, WINDOW_CHARS)
    ]
    windows = pa.LargeListArray.from_arrays(pa.array([0, len(parts)], pa.int64()), pa.concat_arrays(parts))
    return pc.utf8_trim_whitespace(pc.binary_join(windows, pa.scalar("", pa.large_string())))


_LINE_START = re.compile(rb"\n(?=[0-9A-Za-z\xc2-\xf4])")


def line_windows(data: memoryview, size: int) -> Iterator[tuple[int, int]]:
    """[start, stop) byte spans of UTF-8 text; each inner cut follows a newline and precedes a letter or
    digit (str.isalnum). A text with no such place after `size` bytes stays one window."""
    start = search_from = 0
    while len(data) - start > size:
        match = _LINE_START.search(data, max(search_from, start + size))
        if match is None:
            break
        cut = search_from = match.end()
        if str(data[cut : cut + 4], "utf-8", errors="ignore")[:1].isalnum():
            yield start, cut
            start = cut
    yield start, len(data)


def unicode_normalize(text: pa.Array, form: str) -> pa.Array:
    """Most documents are already normalised: a compiled scan of the bytes finds the few that hold a
    character that could change (`may_change_under`), and only those go through Python's quick check
    and normaliser."""
    suspects = np.flatnonzero(may_change_under(text, form))
    values = text.take(pa.array(suspects, pa.int64())).to_pylist()
    changed = [k for k, value in enumerate(values) if value and not unicodedata.is_normalized(form, value)]
    if not changed:
        return text
    mask = np.zeros(len(text), dtype=bool)
    mask[suspects[changed]] = True
    normalized = [unicodedata.normalize(form, values[k]) for k in changed]
    return pc.replace_with_mask(text, pa.array(mask), pa.array(normalized, text.type))


def _ftfy(text: pa.Array) -> pa.Array:
    import ftfy

    return pa.array([None if t is None else ftfy.fix_text(t) for t in text.to_pylist()], pa.large_string())

"""normalize: one canonical form of the text before anything scores or hashes it.

NFC, control and zero-width characters out, unicode spaces to plain spaces, trailing spaces and runs of
blank lines trimmed. Leading indentation is kept on purpose: code and poetry depend on it. All of it runs
as Arrow compute kernels over the whole batch; `ftfy` (mojibake repair) is optional and per document.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.stages.base import Stage, StageParams, StageResult, set_columns
from curate.stages.registry import register

CONTROL_CHARS = r"[\x{00}-\x{08}\x{0B}\x{0C}\x{0E}-\x{1F}\x{7F}\x{200B}-\x{200D}\x{2060}\x{FEFF}]"
UNICODE_SPACES = r"[\x{A0}\x{1680}\x{2000}-\x{200A}\x{202F}\x{205F}\x{3000}]"
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

    def process(self, batch: pa.Table) -> StageResult:
        text = normalize_text(batch.column("text").combine_chunks(), self.params)
        empty = pc.equal(pc.utf8_length(text), 0)
        reasons = pc.if_else(empty, pa.scalar(EMPTY_REASON), pa.scalar(None, pa.string()))
        return StageResult(set_columns(batch, {"text": text}), reasons)


def normalize_text(text: pa.Array, params: NormalizeParams) -> pa.Array:
    if params.ftfy:
        text = _ftfy(text)
    text = unicode_normalize(text, params.form)
    text = pc.replace_substring(text, "\r\n", "\n")
    text = pc.replace_substring(text, "\r", "\n")
    if params.strip_control:
        text = pc.replace_substring_regex(text, CONTROL_CHARS, "")
    if params.unify_spaces:
        text = pc.replace_substring_regex(text, UNICODE_SPACES, " ")
    if params.collapse_spaces:
        text = pc.replace_substring_regex(text, r"(\S)[ \t]{2,}", r"\1 ")
    text = pc.replace_substring_regex(text, r"[ \t]+\n", "\n")
    longest_kept = params.max_blank_lines + 1
    text = pc.replace_substring_regex(text, rf"\n{{{longest_kept + 1},}}", "\n" * longest_kept)
    return pc.utf8_trim_whitespace(text)


def unicode_normalize(text: pa.Array, form: str) -> pa.Array:
    """Most documents are already normalised; the C quick-check skips them, which is 10x faster than
    running Arrow's normaliser over every row."""
    values = text.to_pylist()
    todo = [i for i, value in enumerate(values) if value and not unicodedata.is_normalized(form, value)]
    if not todo:
        return text
    for i in todo:
        values[i] = unicodedata.normalize(form, values[i])
    return pa.array(values, pa.large_string())


def _ftfy(text: pa.Array) -> pa.Array:
    import ftfy

    return pa.array([None if t is None else ftfy.fix_text(t) for t in text.to_pylist()], pa.large_string())

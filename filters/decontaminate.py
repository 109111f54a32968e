"""decontaminate: drop or flag documents that share word n-grams with named evaluation sets.

As GPT-3 (appendix C) and DataTrove: a document with `min_matches` of its word n-grams (`n`: 13) among an
eval set's (and `min_fraction` of its own) is contaminated by it. Both sides are normalised alike: NFKC,
then the dedup shingler's words (`curate.dedup.shingles.normalize_words`): lowercased runs of letters,
digits and marks; punctuation and whitespace only separate words. An eval text is each of `fields` of a
JSONL/Parquet record, or a line of a text file; one of `min_words` to n-1 words is one n-gram of its own
length (GPT-3's short items), a shorter one ("#### 18", a heading) no evidence: ignored. A set is its
distinct 64-bit n-gram hashes, sorted, with a lookup index: 12-20 bytes an n-gram (1M: 8 MB of hashes);
a false match is ~N/2^64 per n-gram. Files are read once, on the driver, at validation (`sha256` records
or pins their bytes); the hashes travel in the pickled params to workers and Ray actors, which never
need the files. Columns: `decontam_set`, the set with most matches over the threshold (else null),
`decontam_ngrams`, its count (else the highest). Reasons and stats: `decontaminate:<set>`.
"""

from __future__ import annotations

import glob
import hashlib
import os
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from curate.dedup import shingles as sh  # its vectorised words: one normalisation in the project
from curate.errors import ConfigError
from curate.paths import GlobParam
from curate.stages.base import Resources, Stage, StageParams, StageResult, set_columns
from curate.utf8_arrays import as_text_array, utf8_buffers

SET_COLUMN, COUNT_COLUMN = "decontam_set", "decontam_ngrams"
FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".txt": "text"}  # by file suffix
_WORD_SEED, _NGRAM_SEED, _WIDTH_KEY, *_KEYS = sh._splitmix64_stream(0xDEC0_17A1_4A7E_0013, 3 + 64)  # n<=64
_MULTS = [np.uint64(k | 1) for k in _KEYS]  # odd: each word position is a bijection of its hash


@dataclass
class Part:
    """~1 MB of words (`doc_words`: each document's offsets), the first `skip` from the window before."""

    first: int
    words: np.ndarray
    doc_words: np.ndarray
    skip: int

    @cached_property
    def word_doc(self) -> np.ndarray:
        return np.repeat(np.arange(self.doc_words.size - 1), np.diff(self.doc_words))

    @cached_property
    def pairs(self) -> np.ndarray:
        return _hashes_at(self.words, None, 2)

    def windows(self, starts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """The `starts` whose window lies in a document and ends past its carried words; their documents."""
        end, doc = starts + width, self.word_doc[starts]
        inside = (end <= self.doc_words[doc + 1]) & (end > self.doc_words[doc] + self.skip)
        return starts[inside], doc[inside]


def _word_parts(texts: sh.TextBatch, carry: int) -> Iterator[Part]:
    """The texts' words in ~1 MB parts, each NFKC'd alone; a longer document in windows cut at ASCII
    separators (NFKC never joins there) that start with the `carry` words before: no n-gram is lost."""
    data, offsets = utf8_buffers(texts := as_text_array(texts))
    for lo, hi in sh._sub_batches(offsets, sh._BATCH_BYTES):
        if hi - lo > 1 or offsets[hi] - offsets[lo] <= sh._BATCH_BYTES:
            yield Part(lo, *_words(*utf8_buffers(_nfkc(texts.slice(lo, hi - lo)))), 0)
            continue
        kept = np.zeros(0, np.uint64)
        for window in sh._byte_windows(data[offsets[lo] : offsets[hi]], sh._BATCH_BYTES):
            text = pa.array([window.tobytes().decode()], pa.large_string())
            words = np.concatenate([kept, _words(*utf8_buffers(_nfkc(text)))[0]])
            yield Part(lo, words, np.array([0, words.size]), kept.size)
            kept = words[max(words.size - carry, 0) :]


def _nfkc(texts: pa.Array) -> pa.Array:
    """NFKC of the non-ASCII texts, by Python's `unicodedata` (its quick check makes it ~10x Arrow's)."""
    other = pc.invert(pc.string_is_ascii(texts))
    normal = [unicodedata.normalize("NFKC", text) for text in texts.filter(other).to_pylist()]
    return pc.replace_with_mask(texts, other, pa.array(normal, texts.type))


def _words(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    buf, mask = sh._normalise_bytes(data)
    starts, ends, doc_words = sh._word_spans(mask, offsets)
    return sh._word_hashes(buf, starts, ends, _WORD_SEED), doc_words


def _hashes_at(words: np.ndarray, starts: np.ndarray | None, width: int) -> np.ndarray:
    """Hashes of the `width`-word windows at `starts` (None: every word, by slices, ~3x faster): a finaliser
    of the position-weighted sum of the word hashes and the width (a short text is never an n-gram)."""
    count = max(words.size - width + 1, 0) if starts is None else starts.size
    acc = np.full(count, (width * _WIDTH_KEY) & ((1 << 64) - 1), np.uint64)
    for k in range(width):
        acc += (words[k : k + count] if starts is None else words[starts + k]) * _MULTS[k]
    acc ^= np.uint64(_NGRAM_SEED)
    return sh._fmix64(acc)


@dataclass(frozen=True)
class NgramTable:
    """Distinct hashes, sorted; `starts[b]`, the first with top bits `b`; `seen`, 4-8 flags a hash that turn
    most absent queries away in one read. 4x faster than a binary search (1M hashes); 12-20 bytes a hash."""

    hashes: np.ndarray
    starts: np.ndarray
    seen: np.ndarray
    shift: int
    seen_shift: int

    @classmethod
    def build(cls, hashes: np.ndarray) -> NgramTable:
        hashes = np.sort(hashes)  # then distinct: 20x faster than np.unique's hash table here
        hashes = hashes[np.r_[True, hashes[1:] != hashes[:-1]]] if hashes.size else hashes
        bits = max(int(hashes.size).bit_length() - 1, 1)  # 2**bits <= size: buckets of 1-2
        buckets = hashes >> np.uint64(64 - bits)
        starts = np.searchsorted(buckets, np.arange(2**bits + 1, dtype=np.uint64)).astype(np.uint32)
        seen = np.zeros(2 ** (bits + 3), bool)
        seen[(hashes >> np.uint64(61 - bits)).astype(np.intp)] = True
        return cls(hashes, starts, seen, 64 - bits, 61 - bits)

    def contains(self, queries: np.ndarray) -> np.ndarray:
        found = np.zeros(queries.size, bool)
        active = np.flatnonzero(self.seen[(queries >> np.uint64(self.seen_shift)).view(np.int64)])
        bucket = (queries[active] >> np.uint64(self.shift)).view(np.int64)
        lo, hi = self.starts[bucket], self.starts[bucket + 1]
        while active.size:
            found[active] |= self.hashes[lo] == queries[active]
            more = (lo := lo + 1) < hi
            active, lo, hi = active[more], lo[more], hi[more]
        return found


@dataclass(frozen=True)
class SetIndex:
    """One eval set: its n-grams and short texts (kept apart by width), and the first pairs of the latter."""

    ngrams: NgramTable
    first_pairs: NgramTable
    widths: tuple[int, ...]

    @classmethod
    def build(cls, texts: sh.TextBatch, n: int, min_words: int) -> SetIndex:
        ngrams, first, widths = [np.zeros(0, np.uint64)], [np.zeros(0, np.uint64)], set()
        for part in _word_parts(texts, n - 1):
            ngrams.append(_hashes_at(part.words, None, n)[part.windows(np.arange(part.words.size), n)[0]])
            lengths = np.diff(part.doc_words)
            for m in np.unique(lengths[(lengths >= min_words) & (lengths < n) & (part.skip == 0)]).tolist():
                starts = part.doc_words[:-1][lengths == m]
                ngrams.append(_hashes_at(part.words, starts, m))
                first.append(_hashes_at(part.words, starts, 2))
                widths.add(m)
        return cls(*(NgramTable.build(np.concatenate(h)) for h in (ngrams, first)), tuple(sorted(widths)))

    def short_hits(self, part: Part) -> np.ndarray:
        """The document of each place a short text of the set occurs (looked for where its first pair is)."""
        candidates = np.flatnonzero(self.first_pairs.contains(part.pairs)) if self.widths else None
        windows = (part.windows(candidates, m) + (m,) for m in self.widths)
        hits = [doc[self.ngrams.contains(_hashes_at(part.words, at, m))] for at, doc, m in windows]
        return np.concatenate([np.zeros(0, np.int64), *hits])


def count_matches(texts: sh.TextBatch, sets: list[SetIndex], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per set and document, its n-grams (and short texts) in the set; and its own n-grams (at least 1)."""
    matches, own = np.zeros((len(sets), len(texts)), np.int64), np.zeros(len(texts), np.int64)
    for part in _word_parts(texts, n - 1):
        docs = slice(part.first, part.first + part.doc_words.size - 1)
        at, doc = part.windows(np.arange(part.words.size), n)
        own[docs] += np.bincount(doc, minlength=part.doc_words.size - 1)
        hashes = _hashes_at(part.words, None, n)[at]
        for i, index in enumerate(sets):
            hits = np.concatenate([doc[index.ngrams.contains(hashes)], index.short_hits(part)])
            matches[i, docs] += np.bincount(hits, minlength=part.doc_words.size - 1)
    return matches, np.maximum(own, 1)


class EvalSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="named in reasons, columns, stats")
    path: GlobParam = Field(description="a file or glob (.gz allowed), relative to the working directory")
    fields: list[str] = Field(default=["text"], min_length=1, description="JSONL/Parquet fields holding text")
    format: Literal["jsonl", "parquet", "text"] | None = Field(default=None, description="else by suffix")
    sha256: str | None = Field(default=None, description="of its files' bytes: filled in, or pinned")

    @model_validator(mode="after")
    def _files_exist_as_pinned(self) -> EvalSet:
        """The digest goes into the config hash and manifest: a run never resumes over changed eval data."""
        self.path = os.path.expanduser(self.path)
        if not self.files():  # (a URL too: sets are read from local files)
            raise ConfigError(f"eval set {self.name!r}: {self.path} matches no local file; fix `path:`")
        self.path = os.path.abspath(self.path)
        digest = hashlib.sha256(b"".join(file.read_bytes() for file in self.files())).hexdigest()
        if self.sha256 not in (None, digest):
            raise ConfigError(f"eval set {self.name!r}: files differ from the pinned `sha256:`; restore them")
        self.sha256 = digest
        return self

    def files(self) -> list[Path]:
        return sorted(Path(p) for p in glob.glob(self.path, recursive=True) if Path(p).is_file())

    def index(self, n: int, min_words: int) -> SetIndex:
        built = SetIndex.build(pa.concat_arrays([self._file_texts(f) for f in self.files()]), n, min_words)
        if not built.ngrams.hashes.size:  # it could match nothing: a wrong field or format, surely
            raise ConfigError(f"eval set {self.name!r} has no text of {min_words}+ words; check `fields:`")
        return built

    def _file_texts(self, file: Path) -> pa.Array:
        fmt = self.format or FORMATS.get(Path(file.stem).suffix if file.suffix == ".gz" else file.suffix)
        if fmt is None:
            raise ConfigError(f"eval set {self.name!r}: cannot tell the format of {file}; set `format:`")
        if fmt == "text":  # (input streams read .gz files too)
            return pa.array(pa.input_stream(str(file)).read().decode().splitlines(), pa.large_string())
        try:
            table = pq.read_table(file) if fmt == "parquet" else pa_json.read_json(pa.input_stream(str(file)))
            columns = [table.column(name).combine_chunks().cast(pa.large_string()) for name in self.fields]
        except (pa.ArrowException, KeyError) as error:
            problem = f"gives no text fields {self.fields} ({(str(error) or 'unreadable').splitlines()[0]})"
            raise ConfigError(f"eval set {self.name!r}: {file} {problem}; fix `fields:`/`format:`") from None
        return pa.concat_arrays(columns)


class DecontaminateParams(StageParams):
    sets: list[EvalSet] = Field(min_length=1, description="the evaluation sets, each with a unique name")
    n: int = Field(default=13, ge=1, le=64, description="words per n-gram (13: GPT-3, DataTrove)")
    min_words: int = Field(default=8, ge=2, description="shorter eval texts are ignored (module doc)")
    min_matches: int = Field(default=1, ge=1, description="matching n-grams that make a document dirty")
    min_fraction: float = Field(default=0.0, ge=0.0, le=1.0, description="...and share of its n-grams")
    mode: Literal["drop", "annotate"] = "drop"
    _index: list[SetIndex] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _hash_the_sets_on_the_driver(self) -> DecontaminateParams:
        if len({s.name for s in self.sets}) < len(self.sets):
            raise ConfigError(f"eval set names repeat in {[s.name for s in self.sets]}; name each set once")
        self.index()
        return self

    def index(self) -> list[SetIndex]:
        """The sets' hashes, built once (on the driver, at validation); they are pickled with the params."""
        if self._index is None:
            self._index = [s.index(self.n, self.min_words) for s in self.sets]
        return self._index


class Decontaminate(Stage):
    name = "decontaminate"
    Params = DecontaminateParams
    params: DecontaminateParams
    drops = {"decontaminate:<set>": "`mode: drop` and at least `min_matches` n-grams of eval set <set>"}
    resources = Resources(cpus=1.0, memory_mb=1024)

    def output_fields(self) -> list[pa.Field]:
        return [pa.field(SET_COLUMN, pa.string()), pa.field(COUNT_COLUMN, pa.int64())]

    def setup(self) -> None:
        self._sets = self.params.index()
        self._names = np.array([s.name for s in self.params.sets], dtype=object)

    def process(self, batch: pa.Table) -> StageResult:
        matches, own = count_matches(batch.column("text"), self._sets, self.params.n)
        over = (matches >= self.params.min_matches) & (matches >= self.params.min_fraction * own)
        best = np.argmax(np.where(over, matches, -1), axis=0)  # ties go to the set listed first
        dirty = over.any(axis=0)
        count = np.where(dirty, matches[best, np.arange(batch.num_rows)], matches.max(axis=0))
        named = pa.array(np.where(dirty, self._names[best], None), pa.string())
        stats = Counter(dict(zip("decontaminate:" + self._names, over.sum(axis=1).tolist(), strict=True)))
        reasons = pa.array(np.where(dirty, "decontaminate:" + self._names[best], None), pa.string())
        table = set_columns(batch, {SET_COLUMN: named, COUNT_COLUMN: pa.array(count, pa.int64())})
        return StageResult(table, reasons if self.params.mode == "drop" else None, stats)

"""How many tokens each document is: exact (the trainer's tokenizer) or estimated (chars per token).

Exact counts cost a tokenizer pass over the text, the most expensive step of a mixture, so they are
computed once per corpus part and tokenizer and kept in a sidecar Parquet file beside the corpus:

    OUT/_token_counts/<tokenizer sha256[:16]>/corpus/domain=<d>/part-....parquet   (row, id, n_tokens)

A sidecar is trusted only while its part file has the size and mtime it was counted from, and while the
tokenizer file hashes the same; anything else is recounted. Counts include the `<|endoftext|>` the
trainer appends to every document, so a mixture's token budget is exactly what the token shards hold
(a literal "<|endoftext|>" inside a text counts as the ordinary bytes the trainer encodes it as).

Why counting is not simply `encode_batch`: for the byte-level BPE the trainer builds, most of
`tokenizers`' time is its GPT-2 pre-tokenizer regex (Oniguruma) and the Encoding objects, not BPE. A
document's count is the sum of its pre-tokens' BPE lengths, and pre-tokens repeat (Zipf), so
`PieceCounter` finds where GPT-2's pre-tokens start in a whole Arrow column at once: numpy over the UTF-8
bytes, each byte given its character's class (letter, number, other, plain space, other whitespace; code
points decoded only for multi-byte characters), the pattern's rules as comparisons of neighbouring
classes. The pre-tokens become a string array over the column's own bytes, Arrow dictionary-encodes it,
the tokenizer's own model counts each distinct pre-token once (remembered across batches), and numpy sums
per document: no regex, no Python object per document or per pre-token, the same counts
(tests/mixers/test_token_counts.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.storage import Location, is_remote, parquet_file, scratch_dir
from mixers.corpus import CorpusSet, PartFile
from mixers.errors import MixError
from mixers.spec import TokenizerSpec

SIDECAR_DIR = "_token_counts"
COUNT_BATCH_BYTES = 16 << 20  # text per counting batch: bounds memory (pieces cost ~4x the text)
ENCODE_BATCH = 512  # texts per call when the tokenizer itself encodes (a tokenizer PieceCounter does not fit)
SIDECAR_SCHEMA = pa.schema([("row", pa.int64()), ("id", pa.string()), ("n_tokens", pa.int64())])


@dataclass(frozen=True)
class TokenCounter:
    """One way of counting tokens; `key` names it in caches and manifests."""

    mode: str
    key: str
    chars_per_token: float | None = None
    tokenizer_path: Path | None = None
    vocab_size: int | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "count": self.mode,
            "path": str(self.tokenizer_path) if self.tokenizer_path else None,
            "sha256": self.key if self.mode == "exact" else None,
            "vocab_size": self.vocab_size,
            "chars_per_token": self.chars_per_token,
        }

    def load(self) -> Any:
        from trainer.tokenizer import load_tokenizer

        assert self.tokenizer_path is not None
        return load_tokenizer(self.tokenizer_path)


def make_counter(spec: TokenizerSpec) -> TokenCounter:
    """Check the tokenizer exists and can be loaded now, before any document is read."""
    if spec.mode == "estimate":
        assert spec.chars_per_token is not None
        return TokenCounter("estimate", f"cpt-{spec.chars_per_token:g}", chars_per_token=spec.chars_per_token)
    from curate.checksums import file_sha256
    from trainer.tokenizer import load_tokenizer, resolve_tokenizer_path

    assert spec.path is not None
    try:
        path = resolve_tokenizer_path(spec.path)
        vocab = load_tokenizer(path).get_vocab_size(with_added_tokens=True)
    except (FileNotFoundError, OSError) as error:
        raise MixError(f"tokenizer.path: {error}") from None
    except Exception as error:  # the tokenizers library raises plain Exceptions on a malformed file
        raise MixError(f"tokenizer.path: {spec.path} is not a tokenizer.json ({error}); train one") from None
    return TokenCounter("exact", file_sha256(path), tokenizer_path=path, vocab_size=vocab)


def estimate_sql(counter: TokenCounter, columns: list[str]) -> tuple[str, list[Any]]:
    """SQL for an estimated count: characters / chars_per_token, rounded up."""
    chars = "n_chars" if "n_chars" in columns else "length(text)"
    return f"CAST(ceil(COALESCE({chars}, 0) / ?) AS BIGINT)", [counter.chars_per_token]


def sidecar_path(part: PartFile, root: Location, counter: TokenCounter) -> Path:
    """Beside the corpus on disk; in a local scratch folder for a corpus on an object store (read-only to
    most mixers, and counts are cheap to redo on another machine)."""
    base = scratch_dir(root, SIDECAR_DIR) if is_remote(root) else Path(root) / SIDECAR_DIR
    return base / counter.key[:16] / part.rel


def sidecar_valid(path: Path, part: PartFile) -> bool:
    """A sidecar counts its part only while the part is the file it was counted from."""
    if not path.is_file():
        return False
    try:
        metadata = pq.read_metadata(path)
    except (OSError, pa.ArrowInvalid):
        return False
    stamp = (metadata.metadata or {}).get(b"source", b"").decode()
    return stamp == _source_stamp(part) and metadata.num_rows == part.rows


def _source_stamp(part: PartFile) -> str:
    """Size and modification time (on an object store, its ETag: it changes whenever the object does)."""
    if is_remote(part.path):
        info = part.path.fs.info(part.path.path)
        return f"{info['size']}:{info.get('ETag', info.get('etag', ''))}"
    stat = part.path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def missing_counts(corpora: CorpusSet, parts: list[PartFile], counter: TokenCounter) -> list[PartFile]:
    return [p for p in parts if not sidecar_valid(sidecar_path(p, corpora.roots[p.corpus], counter), p)]


def count_parts(
    corpora: CorpusSet,
    parts: list[PartFile],
    counter: TokenCounter,
    on_part: Callable[[PartFile], None] | None = None,
) -> None:
    """Write the sidecar of every part that lacks a valid one; text streams in batches bounded by bytes."""
    count = text_counter(counter.load())
    for part in parts:
        target = sidecar_path(part, corpora.roots[part.corpus], counter)
        _write_sidecar(target, part, _count_batches(part, count))
        if on_part is not None:
            on_part(part)


def _count_batches(part: PartFile, count: Callable[[pa.Array], np.ndarray]) -> Iterator[pa.RecordBatch]:
    parquet = parquet_file(part.path)
    row = 0
    for batch in parquet.iter_batches(batch_size=_rows_per_batch(parquet), columns=["id", "text"]):
        counts = count(batch.column("text"))
        rows = np.arange(row, row + batch.num_rows, dtype=np.int64)
        row += batch.num_rows
        yield pa.record_batch([rows, batch.column("id").cast(pa.string()), counts], schema=SIDECAR_SCHEMA)


def _rows_per_batch(parquet: pq.ParquetFile) -> int:
    """Rows holding about COUNT_BATCH_BYTES of text, from the text column's size in the file's footer."""
    meta = parquet.metadata
    text_bytes = sum(
        column.total_uncompressed_size
        for group in range(meta.num_row_groups)
        for column in (meta.row_group(group).column(c) for c in range(meta.num_columns))
        if column.path_in_schema == "text"
    )
    return max(1, int(COUNT_BATCH_BYTES * max(1, meta.num_rows) / max(1, text_bytes)))


def text_counter(tokenizer: Any) -> Callable[[pa.Array], np.ndarray]:
    """Tokens per text of an Arrow string column, `<|endoftext|>` included when the tokenizer has one.

    Encodes like `trainer.tokenizer.encode_documents` (special tokens inside a text are ordinary text,
    so this sets `encode_special_tokens` on the tokenizer). The fast `PieceCounter` when the tokenizer
    is a plain byte-level one; otherwise the tokenizer's own batch encoder.
    """
    tokenizer.encode_special_tokens = True
    extra = 0 if _eot_id(tokenizer) is None else 1
    if PieceCounter.fits(tokenizer):
        pieces = PieceCounter(tokenizer)
        return lambda texts: pieces.count(texts) + extra
    return lambda texts: _encoded_counts(tokenizer, _texts(texts), extra)


def _encoded_counts(tokenizer: Any, texts: list[str], extra: int) -> np.ndarray:
    """`count_tokens` ENCODE_BATCH texts at a time: the Encoding objects cost far more than the text."""
    batches = [
        count_tokens(tokenizer, texts[i : i + ENCODE_BATCH], extra)
        for i in range(0, len(texts), ENCODE_BATCH)
    ]
    return np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)


def _eot_id(tokenizer: Any) -> int | None:
    from trainer.tokenizer import eot_id

    return eot_id(tokenizer)


def _texts(column: pa.Array | pa.ChunkedArray) -> list[str]:
    return [text or "" for text in column.to_pylist()]


def count_tokens(tokenizer: Any, texts: list[str], extra: int = 0) -> np.ndarray:
    """Tokens per text (+ `extra` for the end-of-text token), via the tokenizer's parallel batch encoder:
    the reference `PieceCounter` must agree with."""
    encode = getattr(tokenizer, "encode_batch_fast", None) or tokenizer.encode_batch
    encodings = encode(texts, add_special_tokens=False)
    return np.fromiter((len(e) + extra for e in encodings), dtype=np.int64, count=len(texts))


# Unicode White_Space, the `\s` of the Oniguruma regex in `tokenizers`, but the plain space.
NOT_PLAIN = "\t\n\x0b\x0c\r\x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
NOT_PLAIN += "\u2028\u2029\u202f\u205f\u3000"
SPACES = " " + NOT_PLAIN
# Character classes of GPT-2's pattern  's|'t|'re|'ve|'m|'ll|'d| ?\pL+| ?\pN+| ?[^\s\pL\pN]+|\s+(?!\S)|\s+
OTHER, LETTER, NUMBER, SPACE, BLANK = range(5)  # SPACE: the plain space; BLANK: any other whitespace
UNKNOWN = 255  # a code point not classified yet
APOSTROPHE = ord("'")
MAX_KNOWN = 1_000_000  # distinct pre-tokens remembered across batches (~150 MB) before starting afresh


class PieceCounter:
    """Token counts of a byte-level BPE tokenizer from distinct pre-tokens (module docstring)."""

    def __init__(self, tokenizer: Any) -> None:
        self.model = tokenizer.model
        self.known: dict[str, int] = {}  # tokens of a pre-token
        self.classes = _initial_classes()  # code point -> class, filled in as code points appear

    @staticmethod
    def fits(tokenizer: Any) -> bool:
        """True when a text's count is the sum of its GPT-2 pre-tokens' counts: no normaliser, the plain
        byte-level pre-tokenizer, a deterministic model (no BPE dropout), only special added tokens (which
        `encode_special_tokens` treats as text), and nothing that pads, truncates or adds tokens."""
        config = json.loads(tokenizer.to_str())
        pre = config.get("pre_tokenizer") or {}
        return (
            config.get("normalizer") is None
            and pre.get("type") == "ByteLevel"
            and pre.get("use_regex", True)
            and not pre.get("add_prefix_space", False)
            and not (config.get("model") or {}).get("dropout")
            and all(token.get("special") for token in config.get("added_tokens") or [])
            and (config.get("post_processor") or {}).get("type") in (None, "ByteLevel")
            and config.get("truncation") is None
            and config.get("padding") is None
        )

    def count(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Tokens per text (without an end-of-text token); a null text counts 0."""
        texts = pc.fill_null(_one_chunk(column).cast(pa.large_string()), "")
        _, offsets_buffer, data = texts.buffers()
        offsets = np.frombuffer(offsets_buffer, np.int64)[texts.offset : texts.offset + len(texts) + 1]
        if offsets[-1] == offsets[0]:
            return np.zeros(len(texts), dtype=np.int64)
        text_bytes = np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]
        text_offsets = offsets - offsets[0]
        starts = np.flatnonzero(pretoken_starts(text_bytes, self._byte_classes(text_bytes), text_offsets))
        bounds = np.empty(len(starts) + 1, dtype=np.int64)  # the pre-tokens' offsets into `data`
        bounds[:-1], bounds[-1] = starts + offsets[0], offsets[-1]
        pieces = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(bounds), data)
        encoded = pc.dictionary_encode(pieces)
        per_piece = self._lengths(encoded.dictionary.to_pylist())[encoded.indices.to_numpy()]
        sums = np.concatenate([[0], np.cumsum(per_piece)])
        first_piece = np.searchsorted(starts, text_offsets)  # a text's pre-tokens: up to the next's first
        return sums[first_piece[1:]] - sums[first_piece[:-1]]

    def _byte_classes(self, data: np.ndarray) -> np.ndarray:
        """The class of the character each UTF-8 byte belongs to: ASCII by comparisons, other characters
        from the code point table, which classifies code points the first time they appear."""
        lower = data | 0x20
        letter = (lower >= ord("a")) & (lower <= ord("z"))
        number = (data >= ord("0")) & (data <= ord("9"))
        blank = (data >= ord("\t")) & (data <= ord("\r"))
        classes = np.zeros(len(data), dtype=np.uint8)  # OTHER
        for mask, kind in ((letter, LETTER), (number, NUMBER), (data == ord(" "), SPACE), (blank, BLANK)):
            classes += mask.view(np.uint8) * np.uint8(kind)
        if data.max() < 0x80:
            return classes
        leads = np.flatnonzero(data >= 0xC0)
        classes[leads] = self._code_classes(code_points(data, leads))
        inner = np.flatnonzero((data & 0xC0) == 0x80)  # continuation bytes take their lead byte's class
        classes[inner] = classes[leads[np.searchsorted(leads, inner) - 1]]
        return classes

    def _code_classes(self, codes: np.ndarray) -> np.ndarray:
        """Classes of code points from the table; RE2 classifies each new one once (few per batch)."""
        classes = self.classes[codes]
        unknown = classes == UNKNOWN
        if unknown.any():
            new = np.unique(codes[unknown])
            self.classes[new] = classify([chr(code) for code in new.tolist()])
            classes = self.classes[codes]
        return classes

    def _lengths(self, pieces: list[str]) -> np.ndarray:
        """Tokens of each distinct pre-token, from the model for those not seen before."""
        if len(self.known) + len(pieces) > MAX_KNOWN:
            self.known = {}
        known = self.known
        new = [piece for piece in pieces if piece not in known]
        known.update(zip(new, self._model_tokens(new), strict=True))
        return np.fromiter(map(known.__getitem__, pieces), dtype=np.int64, count=len(pieces))

    def _model_tokens(self, pretokens: list[str]) -> list[int]:
        """Tokens of each pre-token: its UTF-8 bytes as the byte-level pre-tokenizer maps them, then the
        model (BPE), skipping the pre-tokenizer's regex and the Encoding objects of `encode`. The mapping
        runs once over all of them: one character per byte, so a pre-token's bytes locate it."""
        mapped = "".join(pretokens).encode("utf-8").decode("latin-1").translate(BYTE_LEVEL)
        bounds = [0, *np.cumsum([len(p.encode("utf-8")) for p in pretokens]).tolist()]
        tokenize = self.model.tokenize
        return [len(tokenize(mapped[start:end])) for start, end in zip(bounds[:-1], bounds[1:], strict=True)]


def code_points(data: np.ndarray, leads: np.ndarray) -> np.ndarray:
    """The code points of the multi-byte UTF-8 characters starting at `leads` (valid UTF-8: Arrow's)."""
    follow = [data[np.minimum(leads + k, len(data) - 1)].astype(np.uint32) & 0x3F for k in (1, 2, 3)]
    lead = data[leads].astype(np.uint32)
    two = ((lead & 0x1F) << 6) | follow[0]
    three = ((lead & 0x0F) << 12) | (follow[0] << 6) | follow[1]
    four = ((lead & 0x07) << 18) | (follow[0] << 12) | (follow[1] << 6) | follow[2]
    return np.where(lead < 0xE0, two, np.where(lead < 0xF0, three, four))


def pretoken_starts(data: np.ndarray, classes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """True at each byte that starts a GPT-2 pre-token, for UTF-8 texts laid end to end (`offsets`).

    Letters, numbers and other characters form runs of one class, each glued to a plain space before it
    (` ?\\pL+` ...). A whitespace run is one pre-token at a text's end; before anything else its last
    character starts a new one (`\\s+(?!\\S)` leaves it), which a plain space glues to the run after it.
    A contraction starts at an apostrophe where a match can start (not inside an `other` run, nor after a
    plain space that takes the apostrophe into ` ?[^\\s\\pL\\pN]+`), and ends a pre-token.
    """
    size = len(data)
    nonempty = np.diff(offsets) > 0
    first = np.zeros(size, dtype=bool)
    first[offsets[:-1][nonempty]] = True
    last = np.zeros(size, dtype=bool)
    last[offsets[1:][nonempty] - 1] = True
    runs = np.minimum(classes, SPACE)  # whitespace as one class
    starts = first.copy()
    starts[1:] |= (runs[1:] != runs[:-1]) & (classes[:-1] != SPACE)
    run_end = (runs[:-1] == SPACE) & (runs[1:] != SPACE) & ~last[:-1]
    starts[:-1] |= run_end
    if data.max() >= 0x80:  # a run's last character may be several bytes: it starts at its lead byte
        _move_to_lead_bytes(starts, data)
    quotes, lengths = contractions(data, classes, first, last)
    starts[quotes + 1] = False
    starts[quotes[lengths == 3] + 2] = False
    ends = quotes + lengths
    starts[ends[ends < size]] = True
    return starts


def _move_to_lead_bytes(starts: np.ndarray, data: np.ndarray) -> None:
    inner = np.flatnonzero(starts & ((data & 0xC0) == 0x80))
    starts[inner] = False
    for _ in range(3):
        inner -= ((data[inner] & 0xC0) == 0x80).astype(inner.dtype)
    starts[inner] = True


def contractions(
    data: np.ndarray, classes: np.ndarray, first: np.ndarray, last: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and lengths of the `'s|'t|'re|'ve|'m|'ll|'d` the pattern matches: at an apostrophe that
    starts its text or follows a letter, number or whitespace other than the plain space, and is followed
    in its text by one of those endings."""
    quotes = np.flatnonzero(data == APOSTROPHE)
    before = classes[np.maximum(quotes - 1, 0)]
    quotes = quotes[first[quotes] | np.isin(before, (LETTER, NUMBER, BLANK))]
    last_byte = len(data) - 1
    next_1 = np.where(last[quotes], 0, data[np.minimum(quotes + 1, last_byte)])
    in_text = ~(last[quotes] | last[np.minimum(quotes + 1, last_byte)])
    next_2 = np.where(in_text, data[np.minimum(quotes + 2, last_byte)], 0)
    two = np.isin(next_1, [ord(c) for c in "stmd"])
    three = np.zeros(len(quotes), dtype=bool)
    for ending in ("re", "ve", "ll"):
        three |= (next_1 == ord(ending[0])) & (next_2 == ord(ending[1]))
    found = two | three
    return quotes[found], np.where(three, 3, 2)[found]


def _initial_classes() -> np.ndarray:
    """Code point -> class, with ASCII and every whitespace character filled in."""
    table = np.full(0x110000, UNKNOWN, dtype=np.uint8)
    table[:0x80] = classify([chr(code) for code in range(0x80)])
    table[[ord(c) for c in NOT_PLAIN]] = BLANK
    table[ord(" ")] = SPACE
    return table


def classify(chars: list[str]) -> np.ndarray:
    """Class of each character: whitespace as the tokenizer's `\\s`, letters and numbers as RE2's `\\pL`
    and `\\pN` (the tests hold them equal to the tokenizer's on every code point below U+3000)."""
    column = pa.array(chars, type=pa.string())
    classes = np.full(len(chars), OTHER, dtype=np.uint8)
    classes[pc.match_substring_regex(column, "\\pN").to_numpy(zero_copy_only=False)] = NUMBER
    classes[pc.match_substring_regex(column, "\\pL").to_numpy(zero_copy_only=False)] = LETTER
    classes[[char in SPACES for char in chars]] = BLANK
    classes[[char == " " for char in chars]] = SPACE
    return classes


def _byte_level_table() -> dict[int, str]:
    """GPT-2's byte -> printable character map (what `pre_tokenizers.ByteLevel` applies), for
    `str.translate` over a latin-1 view of the bytes: printable bytes map to themselves, others above 255."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    shifted = (b for b in range(256) if b not in printable)
    table = {b: chr(b) for b in printable}
    table.update({b: chr(256 + n) for n, b in enumerate(shifted)})
    return table


BYTE_LEVEL = _byte_level_table()


def _one_chunk(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _write_sidecar(target: Path, part: PartFile, batches: Iterator[pa.RecordBatch]) -> None:
    schema = SIDECAR_SCHEMA.with_metadata({"source": _source_stamp(part)})
    target = _writable(target)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch.replace_schema_metadata(schema.metadata))
    os.replace(tmp, target)


def _writable(target: Path) -> Path:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MixError(
            f"cannot write token counts beside the corpus at {target.parent} ({error.strerror}); "
            "make the corpus folder writable or use chars_per_token"
        ) from None
    return target

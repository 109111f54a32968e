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
`PieceCounter` splits whole Arrow columns with an equivalent RE2 pattern (Arrow's vectorised regex
kernels, no Python object per document), runs the tokenizer's own model once per distinct piece, and sums
per document in numpy: 5-8x less CPU, the same counts (tests/mixers/test_token_counts.py).
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


# Unicode White_Space, the `\s` of the Oniguruma regex in `tokenizers` (RE2's `\s` is ASCII only).
NOT_PLAIN = "\t\n\x0b\x0c\r\x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
NOT_PLAIN += "\u2028\u2029\u202f\u205f\u3000"  # ... but the plain space
SPACES = " " + NOT_PLAIN
SPACE_SET = frozenset(SPACES)
_S = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in SPACES) + "]"  # any whitespace
_SN = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in NOT_PLAIN) + "]"  # whitespace but the plain space
_OTHER = _S[:1] + "^" + _S[1:-1] + "\\pL\\pN]"  # neither whitespace, letter nor number
# GPT-2's pattern  's|'t|'re|'ve|'m|'ll|'d| ?\pL+| ?\pN+| ?[^\s\pL\pN]+|\s+(?!\S)|\s+  without the
# look-ahead RE2 lacks. `\s+(?!\S)` leaves a run's last whitespace to start the next pre-token, so a run
# followed by text is matched here together with that pre-token: `W X` is glued from the pre-tokens
# `W[:-1]` and ` X`, and `W` ending in another whitespace stands for `W[:-1]` and `W[-1]` (see `_lengths`).
# Every match is thus whole pre-tokens, and its count the sum of theirs.
PIECES = "|".join(
    [
        "'s|'t|'re|'ve|'m|'ll|'d",
        " ?\\pL+",
        " ?\\pN+",
        f" ?{_OTHER}+",
        f"{_S}+$",
        f"{_S}* \\pL+",
        f"{_S}* \\pN+",
        f"{_S}* {_OTHER}+",
        f"{_S}*{_SN}",
    ]
)
MARK = "\uffff"  # a noncharacter: ends every piece; the rare text holding one is encoded directly
MAX_KNOWN = 1_000_000  # distinct pieces remembered across batches (~150 MB) before starting afresh


class PieceCounter:
    """Token counts of a byte-level BPE tokenizer from distinct pre-token pieces (module docstring)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.model = tokenizer.model
        self.known: dict[str, int] = {}  # tokens of a piece (as a text's last piece, for whitespace)
        self.split_space: dict[str, int] = {}  # whitespace pieces before a text's end: W[:-1] and W[-1]

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
        pieces = pc.split_pattern(pc.replace_substring_regex(texts, PIECES, "\\0" + MARK), MARK)
        offsets = pieces.offsets.to_numpy()
        encoded = pc.dictionary_encode(pieces.values)
        whole, body = self._lengths(encoded.dictionary.to_pylist())
        index = encoded.indices.to_numpy()
        per_piece = body[index]
        # A text's last piece (before the empty one its final MARK leaves) may be trailing whitespace.
        last = offsets[1:] - 2
        last = last[last >= offsets[:-1]]
        per_piece[last] = whole[index[last]]
        sums = np.concatenate([[0], np.cumsum(per_piece)])
        counts = sums[offsets[1:]] - sums[offsets[:-1]]
        marked = np.flatnonzero(pc.match_substring(texts, MARK).to_numpy(zero_copy_only=False))
        if len(marked):
            counts[marked] = _encoded_counts(self.tokenizer, _texts(texts.take(marked)), 0)
        return counts

    def _lengths(self, pieces: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Tokens of each distinct piece as a text's last piece (`whole`) and anywhere before it (`body`):
        they differ only for whitespace, which stands for two pre-tokens before a text's end."""
        if len(self.known) + len(pieces) > MAX_KNOWN:
            self.known, self.split_space = {}, {}
        self._learn([p for p in pieces if p not in self.known])
        whole = np.fromiter(map(self.known.__getitem__, pieces), dtype=np.int64, count=len(pieces))
        body = whole.copy()
        split_space = self.split_space
        for index, piece in enumerate(pieces):
            if piece in split_space:
                body[index] = split_space[piece]
        return whole, body

    def _learn(self, new: list[str]) -> None:
        """Count new pieces: one pre-token each, but for those starting with two whitespace characters."""
        for piece in new:
            if piece[:1] in SPACE_SET and piece[1:2] in SPACE_SET:
                self._learn_spaced(piece)
            else:
                self.known[piece] = self._model_tokens(piece)

    def _learn_spaced(self, piece: str) -> None:
        """A whitespace run `W`: one pre-token at a text's end, else `W[:-1]` and `W[-1]`; `W X` glued
        from `W[:-1]` and ` X` (see PIECES)."""
        rest = piece.lstrip(SPACES)
        lead = len(piece) - len(rest)
        if rest:
            self.known[piece] = self._model_tokens(piece[: lead - 1]) + self._model_tokens(piece[lead - 1 :])
            return
        self.known[piece] = self._model_tokens(piece)
        self.split_space[piece] = self._model_tokens(piece[:-1]) + self._model_tokens(piece[-1:])

    def _model_tokens(self, pretoken: str) -> int:
        """Tokens of one pre-token: its UTF-8 bytes as the byte-level pre-tokenizer maps them, then the
        model (BPE), skipping the pre-tokenizer's regex and the Encoding objects of `encode`."""
        if not pretoken:
            return 0
        return len(self.model.tokenize(pretoken.encode("utf-8").decode("latin-1").translate(BYTE_LEVEL)))


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

"""How many tokens each document is: exact (the trainer's tokenizer) or estimated (chars per token).

Exact counts cost a tokenizer pass over the text, the most expensive step of a mixture, so they are
computed once per corpus part and tokenizer and kept in a sidecar Parquet file beside the corpus:

    OUT/_token_counts/<tokenizer sha256[:16]>/corpus/domain=<d>/part-....parquet   (row, id, n_tokens)

A sidecar is trusted only while its part file has the size and mtime it was counted from, and while the
tokenizer file hashes the same; anything else is recounted. Counts include the `<|endoftext|>` the
trainer appends to every document, so a mixture's token budget is exactly what the token shards hold.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.storage import Location, is_remote, parquet_file, scratch_dir
from mixers.corpus import CorpusSet, PartFile
from mixers.errors import MixError
from mixers.spec import TokenizerSpec

SIDECAR_DIR = "_token_counts"
COUNT_BATCH = 512
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
    """Write the sidecar of every part that lacks a valid one; text streams one batch at a time."""
    tokenizer = counter.load()
    eot = _eot_id(tokenizer)
    for part in parts:
        target = sidecar_path(part, corpora.roots[part.corpus], counter)
        _write_sidecar(target, part, _count_batches(part, tokenizer, eot))
        if on_part is not None:
            on_part(part)


def _eot_id(tokenizer: Any) -> int | None:
    from trainer.tokenizer import eot_id

    return eot_id(tokenizer)


def _count_batches(part: PartFile, tokenizer: Any, eot: int | None) -> Iterator[pa.RecordBatch]:
    extra = 0 if eot is None else 1
    row = 0
    for batch in parquet_file(part.path).iter_batches(batch_size=COUNT_BATCH, columns=["id", "text"]):
        texts = [text or "" for text in batch.column("text").to_pylist()]
        counts = count_tokens(tokenizer, texts, extra)
        rows = np.arange(row, row + batch.num_rows, dtype=np.int64)
        row += batch.num_rows
        yield pa.record_batch([rows, batch.column("id").cast(pa.string()), counts], schema=SIDECAR_SCHEMA)


def count_tokens(tokenizer: Any, texts: list[str], extra: int = 0) -> np.ndarray:
    """Tokens per text (+ `extra` for the end-of-text token), via the tokenizer's parallel batch encoder."""
    encode = getattr(tokenizer, "encode_batch_fast", None) or tokenizer.encode_batch
    encodings = encode(texts, add_special_tokens=False)
    return np.fromiter((len(e) + extra for e in encodings), dtype=np.int64, count=len(texts))


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

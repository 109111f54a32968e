"""Token shards: the one on-disk format between a tokenized mixture and the proxy trainer.

A token-shard folder holds three files::

    tokens.bin          every document's token ids back to back, flat little-endian uint16 when
                        vocab_size <= 65536, else uint32 (no header; its length is n_tokens * itemsize)
    documents.parquet   one row per document, in file order:
                          start    int64   offset of the document's first token in tokens.bin (in tokens)
                          length   int64   number of tokens of the document
                          domain   string  mixing group (web, wiki, code, ...)
                          n_bytes  int64   UTF-8 bytes of the document's text (for exact bits-per-byte)
                          url      string  the document's URL, null when unknown   (optional: metadata
                          site     string  its registered domain, null when unknown  conditioning, MeCo)
    tokens.json         {"format": "curate-token-shards", "version": 1, "dtype": "uint16"|"uint32",
                         "vocab_size", "n_tokens", "n_documents", "eot_id" (int or null),
                         "tokenizer": {"path", "sha256"}, "domains": {domain: {"documents", "tokens"}}}

Documents are packed in order; by convention (see ``trainer.tokenizer.encode_documents``) each one ends
with the ``<|endoftext|>`` token. ``tokens.json`` is written last and renamed into place, so a folder
without it is an unfinished write and is refused by the reader. The writer streams: it never holds more
than one batch of document rows in memory, whatever the mixture size.

Reading memory-maps ``tokens.bin``. Documents are split once, deterministically, into training and
held-out evaluation documents per domain (:meth:`TokenShards.split`), so evaluation never sees a token
the model was trained on. :class:`WindowSampler` draws seeded (B, T+1) windows from the training
documents only; :func:`eval_batches` cuts each held-out document into windows that predict each of its
tokens exactly once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FORMAT = "curate-token-shards"
VERSION = 1
TOKENS_BIN = "tokens.bin"
DOCUMENTS = "documents.parquet"
META = "tokens.json"
DOC_SCHEMA = pa.schema(
    [
        ("start", pa.int64()),
        ("length", pa.int64()),
        ("domain", pa.string()),
        ("n_bytes", pa.int64()),
        ("url", pa.string()),
        ("site", pa.string()),
    ]
)
METADATA_FIELDS = ("url", "site")  # per-document metadata a mixture's Parquet may carry
ROWS_PER_BATCH = 65_536

Metadata = dict[str, str | None]  # {"url": ..., "site": ...}, either may be missing or None
Doc = tuple[Any, str] | tuple[Any, str, int] | tuple[Any, str, int, Metadata]


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits (halves the file and the page cache), uint32 beyond 65536 ids."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return np.dtype("<u2") if vocab_size <= 65536 else np.dtype("<u4")


def is_token_dir(path: Path) -> bool:
    """A finished token-shard folder (``tokens.json`` is its completion marker)."""
    return (Path(path) / META).is_file()


class _DocumentRows:
    """Buffers documents.parquet rows and flushes them in batches (the streaming half of the writer)."""

    def __init__(self, path: Path) -> None:
        self.writer = pq.ParquetWriter(path, DOC_SCHEMA)
        self.rows: dict[str, list] = {name: [] for name in DOC_SCHEMA.names}

    def add(self, start: int, length: int, domain: str, n_bytes: int, metadata: Metadata) -> None:
        values = (start, length, domain, n_bytes, *(metadata.get(name) or None for name in METADATA_FIELDS))
        for name, value in zip(DOC_SCHEMA.names, values, strict=True):
            self.rows[name].append(value)
        if len(self.rows["start"]) >= ROWS_PER_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.rows["start"]:
            self.writer.write_table(pa.table(self.rows, schema=DOC_SCHEMA))
            self.rows = {name: [] for name in DOC_SCHEMA.names}

    def close(self) -> None:
        self.flush()
        self.writer.close()


def _unpack_doc(doc: Doc, vocab_size: int, bytes_of: Any) -> tuple[np.ndarray, str, int, Metadata]:
    """Validate one (tokens, domain[, n_bytes[, metadata]]) item; n_bytes is decoded from the tokens when
    absent."""
    tokens = np.asarray(doc[0])
    if tokens.ndim != 1 or (tokens.size and not np.issubdtype(tokens.dtype, np.integer)):
        raise ValueError("each document's tokens must be a flat sequence of integer ids")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(f"token id out of range [0, {vocab_size}) in a document of domain {doc[1]!r}")
    domain = doc[1]
    if not isinstance(domain, str) or not domain:
        raise ValueError(f"domain must be a non-empty string, got {domain!r}")
    n_bytes = int(doc[2]) if len(doc) > 2 else bytes_of(tokens)
    metadata = doc[3] if len(doc) > 3 else {}
    return tokens, domain, n_bytes, metadata


def _byte_counter(tokenizer_path: Path) -> Any:
    """n_bytes from token ids, for writers that did not keep the text (byte-level BPE decodes exactly)."""
    from trainer.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_path)
    return lambda tokens: len(tokenizer.decode(tokens.tolist()).encode("utf-8"))


PARQUET_READ_ROWS = 512


def write_parquet_token_shards(
    folder: Path, files: list[Path], tokenizer: Any, tokenizer_path: Path
) -> dict[str, Any]:
    """Token shards of Parquet files with `text` and `domain` columns, rows in file order; their `url`
    and `site` columns, when present, are kept as document metadata (for metadata conditioning).

    The one path from Parquet documents to this format, for a mixture's `tokens/` (`curate mix --tokens`)
    and for the trainer given a Parquet mixture, so both count and encode documents the same way."""
    from trainer.tokenizer import eot_id

    documents = _parquet_documents(files, tokenizer)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    return write_token_shards(folder, documents, vocab_size, tokenizer_path, eot_id=eot_id(tokenizer))


def _parquet_documents(files: list[Path], tokenizer: Any) -> Iterator[Doc]:
    from trainer.tokenizer import encode_documents

    for path in files:
        parquet = pq.ParquetFile(path)
        extra = [name for name in METADATA_FIELDS if name in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(batch_size=PARQUET_READ_ROWS, columns=["text", "domain", *extra]):
            texts = [text or "" for text in batch.column("text").to_pylist()]
            domains = batch.column("domain").to_pylist()
            metadata = batch.select(extra).to_pylist() if extra else [{}] * batch.num_rows
            encoded = encode_documents(tokenizer, texts)
            for (ids, n_bytes), domain, meta in zip(encoded, domains, metadata, strict=True):
                yield ids, domain, n_bytes, meta


def write_token_shards(
    folder: Path, docs: Iterable[Doc], vocab_size: int, tokenizer_path: Path, eot_id: int | None = None
) -> dict[str, Any]:
    """Stream ``docs`` ((tokens, domain), (tokens, domain, n_bytes) or (tokens, domain, n_bytes,
    {"url": ..., "site": ...})) into a token-shard folder.

    Files are written under temporary names and renamed, ``tokens.json`` last, so a crash leaves no
    folder that looks complete. ``eot_id`` defaults to the tokenizer's ``<|endoftext|>``. Returns the
    metadata written to ``tokens.json``.
    """
    from curate.checksums import file_sha256
    from trainer.tokenizer import EOT, load_tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_path = Path(tokenizer_path).resolve()
    if eot_id is None:
        eot_id = load_tokenizer(tokenizer_path).token_to_id(EOT)
    dtype = token_dtype(vocab_size)
    suffix = f".{os.getpid()}.tmp"
    tmp_bin, tmp_docs = folder / (TOKENS_BIN + suffix), folder / (DOCUMENTS + suffix)
    bytes_of = None
    n_tokens = 0
    domains: dict[str, dict[str, int]] = {}
    rows = _DocumentRows(tmp_docs)
    with open(tmp_bin, "wb") as handle:
        for doc in docs:
            if len(doc) < 3 and bytes_of is None:
                bytes_of = _byte_counter(tokenizer_path)
            tokens, domain, n_bytes, metadata = _unpack_doc(doc, vocab_size, bytes_of)
            handle.write(tokens.astype(dtype, copy=False).tobytes())
            rows.add(n_tokens, len(tokens), domain, n_bytes, metadata)
            counts = domains.setdefault(domain, {"documents": 0, "tokens": 0})
            counts["documents"] += 1
            counts["tokens"] += len(tokens)
            n_tokens += len(tokens)
    rows.close()
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": dtype.name,
        "vocab_size": int(vocab_size),
        "n_tokens": n_tokens,
        "n_documents": sum(c["documents"] for c in domains.values()),
        "eot_id": eot_id,
        "tokenizer": {"path": str(tokenizer_path), "sha256": file_sha256(tokenizer_path)},
        "domains": dict(sorted(domains.items())),
    }
    os.replace(tmp_bin, folder / TOKENS_BIN)
    os.replace(tmp_docs, folder / DOCUMENTS)
    tmp_meta = folder / (META + suffix)
    tmp_meta.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp_meta, folder / META)
    return meta


@dataclass(frozen=True)
class Split:
    """Document indices (into documents.parquet) for training and held-out evaluation."""

    train: np.ndarray
    eval: np.ndarray


class TokenShards:
    """Read side of the format: memory-mapped tokens plus the document table as numpy arrays."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        if not is_token_dir(self.folder):
            raise FileNotFoundError(f"{self.folder}: not a token-shard folder (no {META}); write one first")
        self.meta: dict[str, Any] = json.loads((self.folder / META).read_text())
        if self.meta.get("format") != FORMAT or self.meta.get("version") != VERSION:
            raise ValueError(f"{self.folder / META}: not a {FORMAT} v{VERSION} file")
        dtype = np.dtype(self.meta["dtype"]).newbyteorder("<")
        n_tokens = int(self.meta["n_tokens"])
        size = (self.folder / TOKENS_BIN).stat().st_size
        if size != n_tokens * dtype.itemsize:
            raise ValueError(
                f"{self.folder / TOKENS_BIN}: {size} bytes, expected {n_tokens} x {dtype.itemsize}"
            )
        self.tokens = (
            np.memmap(self.folder / TOKENS_BIN, dtype=dtype, mode="r", shape=(n_tokens,))
            if n_tokens
            else np.zeros(0, dtype=dtype)
        )
        table = pq.read_table(self.folder / DOCUMENTS)
        self.starts = table["start"].to_numpy()
        self.lengths = table["length"].to_numpy()
        self.n_bytes = table["n_bytes"].to_numpy()
        domain_codes = table["domain"].dictionary_encode().combine_chunks()
        names = domain_codes.dictionary.to_pylist()
        order = np.argsort(names)  # domain ids follow sorted names, independent of document order
        self.domains: list[str] = [names[i] for i in order]
        self.domain_ids = np.argsort(order)[domain_codes.indices.to_numpy()]

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def eot_id(self) -> int | None:
        return self.meta.get("eot_id")

    @property
    def tokenizer_path(self) -> Path:
        return Path(self.meta["tokenizer"]["path"])

    def __len__(self) -> int:
        return len(self.starts)

    def metadata(self, field: str) -> list[str | None]:
        """Every document's ``url`` or ``site`` (None where unknown; all None for shards written before
        the column existed). Read on demand: only metadata conditioning needs it."""
        if field not in METADATA_FIELDS:
            raise ValueError(f"unknown document metadata {field!r}; known: {', '.join(METADATA_FIELDS)}")
        path = self.folder / DOCUMENTS
        if field not in pq.read_schema(path).names:
            return [None] * len(self)
        return pq.read_table(path, columns=[field]).column(field).to_pylist()

    def document(self, index: int) -> np.ndarray:
        """Token ids of one document (a copy, as int64)."""
        start = int(self.starts[index])
        return np.asarray(self.tokens[start : start + int(self.lengths[index])], dtype=np.int64)

    def split(self, eval_fraction: float = 0.05, max_eval_docs: int = 256, seed: int = 0) -> Split:
        """Hold out ``eval_fraction`` of each domain's non-empty documents (at least one, at most
        ``max_eval_docs``) by a seeded permutation; a domain with a single document is all training.

        The seed is the split's own, not the training seed, so runs with different seeds are scored on
        the same held-out documents.
        """
        if not 0.0 <= eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
        rng = np.random.default_rng(seed)
        held_out: list[np.ndarray] = []
        for domain_id in range(len(self.domains)):
            docs = np.flatnonzero((self.domain_ids == domain_id) & (self.lengths > 0))
            if len(docs) < 2 or eval_fraction == 0.0:
                continue
            count = min(max(1, round(eval_fraction * len(docs))), max_eval_docs, len(docs) - 1)
            held_out.append(np.sort(rng.permutation(docs)[:count]))
        eval_docs = np.concatenate(held_out) if held_out else np.zeros(0, dtype=np.int64)
        train_docs = np.setdiff1d(np.arange(len(self)), eval_docs)
        return Split(train=train_docs[self.lengths[train_docs] > 0], eval=np.sort(eval_docs))


class WindowSampler:
    """Seeded (B, T+1) token windows from the virtual concatenation of the chosen documents.

    Batch ``k`` depends only on (seed, k), never on earlier draws, so the sampler's whole state is the
    next batch index: a resumed run continues with exactly the batches it would have seen.
    """

    def __init__(
        self, shards: TokenShards, docs: np.ndarray, batch_size: int, seq_len: int, seed: int
    ) -> None:
        self.shards = shards
        self.docs = np.asarray(docs, dtype=np.int64)
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        lengths = shards.lengths[self.docs]
        self.ends = np.cumsum(lengths)  # virtual end offset of each chosen document
        self.total = int(self.ends[-1]) if len(self.ends) else 0
        if self.total < seq_len + 1:
            raise ValueError(
                f"{shards.folder}: {self.total} training tokens, fewer than one window of "
                f"{seq_len + 1}; use more data or a shorter --seq-len"
            )
        self.next_index = 0

    def _virtual_positions(self, index: int, total: int) -> np.ndarray:
        """(B, T+1) positions in a virtual stream of ``total`` tokens, a pure function of (seed, index)."""
        rng = np.random.default_rng((self.seed, index))
        offsets = rng.integers(0, total - self.seq_len, size=self.batch_size)
        return offsets[:, None] + np.arange(self.seq_len + 1)

    def batch(self, index: int) -> np.ndarray:
        """Batch ``index`` as int64 (B, T+1); windows may span document boundaries (packed training)."""
        virtual = self._virtual_positions(index, self.total)
        doc = np.searchsorted(self.ends, virtual, side="right")
        real = self.shards.starts[self.docs[doc]] + (
            virtual - (self.ends[doc] - self.shards.lengths[self.docs[doc]])
        )
        return np.asarray(self.shards.tokens[real.ravel()], dtype=np.int64).reshape(virtual.shape)

    def masked_batch(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Batch ``index`` and the (B, T) mask of targets that count in the loss (None: all of them)."""
        return self.batch(index), None

    def next_masked(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The next batch with its loss mask; advances like ``next()``."""
        batch = self.masked_batch(self.next_index)
        self.next_index += 1
        return batch

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        batch = self.batch(self.next_index)
        self.next_index += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"next_index": self.next_index, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["seed"] != self.seed:
            raise ValueError(f"sampler state was saved with seed {state['seed']}, this run uses {self.seed}")
        self.next_index = int(state["next_index"])


class PrefixedWindowSampler(WindowSampler):
    """Windows over documents each preceded by its own prefix tokens (metadata conditioning, MeCo), for
    the first ``prefixed_batches`` batches; plain windows after that (the cooldown).

    The virtual stream is ``prefix_1 doc_1 prefix_2 doc_2 ...``: a prefix is context only, so the targets
    that are prefix tokens get mask False and weigh nothing in the loss; the document's first token,
    predicted from its prefix, counts. A document with an empty prefix (no metadata) trains plain. Batch
    ``k`` still depends only on (seed, k), so resuming mid-run, even across the switch, is exact.
    """

    def __init__(
        self,
        shards: TokenShards,
        docs: np.ndarray,
        batch_size: int,
        seq_len: int,
        seed: int,
        prefixes: list[np.ndarray],
        prefixed_batches: int,
    ) -> None:
        super().__init__(shards, docs, batch_size, seq_len, seed)
        if len(prefixes) != len(self.docs):
            raise ValueError(f"{len(prefixes)} prefixes for {len(self.docs)} documents")
        self.prefixed_batches = prefixed_batches
        self.prefix_lengths = np.array([len(p) for p in prefixes], dtype=np.int64)
        self.prefix_starts = np.concatenate(([0], np.cumsum(self.prefix_lengths)[:-1])).astype(np.int64)
        # one spare slot, so the gather below never indexes an empty array
        self.prefix_tokens = np.concatenate([*(np.asarray(p, dtype=np.int64) for p in prefixes), [0]])
        self.prefixed_lengths = shards.lengths[self.docs] + self.prefix_lengths
        self.prefixed_ends = np.cumsum(self.prefixed_lengths)

    def masked_batch(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        if index >= self.prefixed_batches:
            return self.batch(index), None
        virtual = self._virtual_positions(index, int(self.prefixed_ends[-1]))
        doc = np.searchsorted(self.prefixed_ends, virtual, side="right")
        within = virtual - (self.prefixed_ends[doc] - self.prefixed_lengths[doc])
        in_prefix = within < self.prefix_lengths[doc]
        prefix_at = self.prefix_starts[doc] + np.minimum(within, np.maximum(self.prefix_lengths[doc] - 1, 0))
        doc_at = self.shards.starts[self.docs[doc]] + np.maximum(within - self.prefix_lengths[doc], 0)
        tokens = np.where(
            in_prefix,
            self.prefix_tokens[prefix_at],
            np.asarray(self.shards.tokens[doc_at.ravel()]).reshape(doc_at.shape),
        )
        return tokens.astype(np.int64), ~in_prefix[:, 1:]


@dataclass(frozen=True)
class EvalBatch:
    """Inputs/targets (B, T) int64 and a mask of the target positions that count."""

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray


Window = tuple[np.ndarray, np.ndarray, np.ndarray]  # inputs, targets, which targets count


def document_windows(
    tokens: np.ndarray, seq_len: int, eot_id: int | None, prefix: np.ndarray | None = None
) -> Iterator[Window]:
    """(inputs, targets, counted) chunks of one document, predicting every token exactly once.

    With an end-of-text id the document is preceded by it, so even the first token is predicted (from a
    document boundary, as in training); without one the first token is context only. A ``prefix``
    (metadata conditioning; may be empty) heads EVERY window, after the boundary: each window is boundary
    + prefix + the next stretch of the document, so every token is predicted with the metadata in its
    context, as a document that fits one context after its metadata is (MeCo conditions the whole
    document). The head is context, never a counted target.
    """
    boundary = [] if eot_id is None else [eot_id]
    if prefix is None or not len(boundary) + len(prefix):
        yield from _running_windows(np.concatenate((np.asarray(boundary, dtype=np.int64), tokens)), seq_len)
        return
    head = np.asarray([*boundary, *prefix], dtype=np.int64)
    if len(head) > seq_len:
        raise ValueError(f"a prefix of {len(prefix)} tokens leaves no room in windows of {seq_len}")
    stretch = seq_len + 1 - len(head)  # document tokens per window
    counted = np.arange(seq_len) >= len(head) - 1
    for begin in range(0, len(tokens), stretch):
        chunk = np.concatenate((head, tokens[begin : begin + stretch]))
        yield chunk[:-1], chunk[1:], counted[: len(chunk) - 1]


def _running_windows(sequence: np.ndarray, seq_len: int) -> Iterator[Window]:
    """Consecutive windows over ``sequence``, each one's first input the previous one's last target."""
    for begin in range(0, len(sequence) - 1, seq_len):
        chunk = sequence[begin : begin + seq_len + 1]
        yield chunk[:-1], chunk[1:], np.ones(len(chunk) - 1, dtype=bool)


def eval_batches(
    shards: TokenShards,
    docs: Iterable[int],
    seq_len: int,
    batch_size: int,
    prefix_of: Callable[[int], np.ndarray | None] | None = None,
) -> Iterator[EvalBatch]:
    """Padded batches of held-out windows over ``docs`` (one domain's, typically); ``prefix_of(doc)``
    gives a document's prefix tokens, heading each of its windows, when scoring conditioned on metadata
    (plain evaluation: None)."""
    rows: list[Window] = []
    for index in docs:
        prefix = prefix_of(int(index)) if prefix_of is not None else None
        for window in document_windows(shards.document(int(index)), seq_len, shards.eot_id, prefix):
            rows.append(window)
            if len(rows) == batch_size:
                yield _pad(rows, seq_len)
                rows = []
    if rows:
        yield _pad(rows, seq_len)


def _pad(rows: list[Window], seq_len: int) -> EvalBatch:
    inputs = np.zeros((len(rows), seq_len), dtype=np.int64)
    targets = np.zeros_like(inputs)
    mask = np.zeros(inputs.shape, dtype=bool)
    for i, (x, y, counted) in enumerate(rows):
        inputs[i, : len(x)], targets[i, : len(y)], mask[i, : len(y)] = x, y, counted
    return EvalBatch(inputs, targets, mask)

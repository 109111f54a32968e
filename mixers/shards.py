"""MIX/tokens/: the mixture as token shards, in the trainer's format, written by the trainer's writer.

Documents go in MIX part order, so document i of the shards is row i of the concatenated parts; each is
encoded with `trainer.tokenizer.encode_documents` (which appends `<|endoftext|>`), the same recipe the
sampler counted with, and the writer's token total must equal the manifest's: a mismatch is a bug, not a
user error, and fails the build before anything is committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from mixers.errors import MixError

TOKENS_DIR = "tokens"
READ_BATCH = 512


class TokenCountMismatch(RuntimeError):
    """The shards hold a different number of tokens than the sampler counted: a bug, never a user error."""


def write_tokens(plan: Any, staging: Path, manifest: dict[str, Any], say: Any) -> dict[str, Any]:
    """Encode the written parts into staging/tokens/ and check the totals against the manifest."""
    from trainer.token_shards import write_token_shards
    from trainer.tokenizer import eot_id

    counter = plan.counter
    if counter.tokenizer_path is None:
        raise MixError("--tokens needs a tokenizer: set `tokenizer: {path: ...}` in the spec")
    tokenizer = counter.load()
    parts = [staging / entry["path"] for entry in manifest["files"]]
    say(f"writing token shards for {manifest['totals']['documents']:,} documents")
    meta = write_token_shards(
        staging / TOKENS_DIR,
        _documents(tokenizer, parts),
        vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
        tokenizer_path=counter.tokenizer_path,
        eot_id=eot_id(tokenizer),
    )
    expected = manifest["totals"]["achieved_tokens"]
    if meta["n_tokens"] != expected:
        raise TokenCountMismatch(
            f"token shards hold {meta['n_tokens']:,} tokens, the sampler counted {expected:,}"
        )
    return {"path": TOKENS_DIR, "n_tokens": meta["n_tokens"], "dtype": meta["dtype"]}


def _documents(tokenizer: Any, parts: list[Path]) -> Iterator[tuple[np.ndarray, str, int]]:
    from trainer.tokenizer import encode_documents

    for path in parts:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_BATCH, columns=["text", "domain"]):
            texts = [text or "" for text in batch.column("text").to_pylist()]
            domains = batch.column("domain").to_pylist()
            for (ids, n_bytes), domain in zip(encode_documents(tokenizer, texts), domains, strict=True):
                yield ids, domain, n_bytes

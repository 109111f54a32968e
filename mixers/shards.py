"""MIX/tokens/: the mixture as token shards, in the trainer's format, written by the trainer's writer.

Documents go in MIX part order, so document i of the shards is row i of the concatenated parts; each is
encoded with `trainer.tokenizer.encode_documents` (which appends `<|endoftext|>`), the same recipe the
sampler counted with, and the writer's token total must equal the manifest's: a mismatch is a bug, not a
user error, and fails the build before anything is committed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixers.errors import MixError

TOKENS_DIR = "tokens"


class TokenCountMismatch(RuntimeError):
    """The shards hold a different number of tokens than the sampler counted: a bug, never a user error."""


def write_tokens(plan: Any, staging: Path, manifest: dict[str, Any], say: Any) -> dict[str, Any]:
    """Encode the written parts into staging/tokens/ and check the totals against the manifest."""
    from trainer.token_shards import write_parquet_token_shards

    counter = plan.counter
    if counter.tokenizer_path is None:
        raise MixError("--tokens needs a tokenizer: set `tokenizer: {path: ...}` in the spec")
    tokenizer = counter.load()
    parts = [staging / entry["path"] for entry in manifest["files"]]
    say(f"writing token shards for {manifest['totals']['documents']:,} documents")
    meta = write_parquet_token_shards(staging / TOKENS_DIR, parts, tokenizer, counter.tokenizer_path)
    expected = manifest["totals"]["achieved_tokens"]
    if meta["n_tokens"] != expected:
        raise TokenCountMismatch(
            f"token shards hold {meta['n_tokens']:,} tokens, the sampler counted {expected:,}"
        )
    return {"path": TOKENS_DIR, "n_tokens": meta["n_tokens"], "dtype": meta["dtype"]}

"""Metadata conditioning (MeCo: "Metadata Conditioning Accelerates Language Model Pre-training", Gao et
al. 2025): each training document is preceded by its URL or site as real tokens, ``URL: en.wikipedia.org``
and a blank line, tokenised with the run's own tokenizer. The prefix is context only (no loss on it), and
the last ``cooldown`` share of the steps trains on plain documents, so the model also works without
metadata, which is how it is evaluated. Documents without the metadata train plain throughout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curate.errors import ConfigError
from trainer.choices import MetadataField
from trainer.token_shards import TokenShards

PREFIX_TEMPLATE = "URL: {}\n\n"  # the paper's format, for a full URL and a site alike
MAX_PREFIX_TOKENS = 64  # a very long URL is cut: the prefix must leave the window room for the document


def prefix_text(value: str) -> str:
    return PREFIX_TEMPLATE.format(value)


def encode_prefixes(tokenizer_path: Path, values: list[str | None], max_tokens: int) -> list[np.ndarray]:
    """Prefix token ids per value (empty where None), each distinct value encoded once."""
    from trainer.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_path)
    distinct = sorted({value for value in values if value})
    encoded = tokenizer.encode_batch([prefix_text(value) for value in distinct]) if distinct else []
    ids = {
        value: np.asarray(enc.ids[:max_tokens], dtype=np.int64)
        for value, enc in zip(distinct, encoded, strict=True)
    }
    empty = np.zeros(0, dtype=np.int64)
    return [ids[value] if value else empty for value in values]


def document_prefixes(
    shards: TokenShards, docs: np.ndarray, field: MetadataField, seq_len: int
) -> list[np.ndarray]:
    """The prefix of each of ``docs`` (empty without metadata); a ConfigError when none has any, since
    a run that asked for conditioning and silently got none would measure nothing."""
    values = shards.metadata(field)
    chosen = [values[int(doc)] for doc in docs]
    if not any(chosen):
        raise ConfigError(
            f"--metadata-conditioning {field}: no training document of {shards.folder} has a {field}; "
            f"train on Parquet with a `{field}` column (a corpus tagged by `curate run`)"
        )
    return encode_prefixes(shards.tokenizer_path, chosen, min(MAX_PREFIX_TOKENS, seq_len // 4))


def conditioned_steps(steps: int, cooldown: float) -> int:
    """Updates that see metadata: the first (1 - cooldown) of them, rounded to whole steps."""
    return round((1.0 - cooldown) * steps)

"""Byte-level BPE for the proxy LM, trained on a sample of the corpus and cached by the sample's hash.

Why byte-level: every UTF-8 string round-trips exactly (no unknown token, no normalisation), which is
what makes bits-per-byte an exact, tokenizer-independent score. Why cached by hash: the same sample and
vocabulary size always give the same tokenizer file, so a mixture search that trains hundreds of proxies
tokenizes them all with one vocabulary and never retrains it.

The only special token is ``<|endoftext|>`` (id 0); :func:`encode_documents` appends it to every
document so a model learns where documents end and evaluation can condition on a document boundary.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOT = "<|endoftext|>"
DEFAULT_CACHE = Path(".cache/tokenizers")
TOKENIZER_FILE = "tokenizer.json"
MIN_VOCAB = 257  # 256 byte symbols + <|endoftext|>
# Bump when the training recipe below changes, so old cache entries are not mistaken for new ones.
RECIPE_VERSION = "bytelevel-bpe-v1"


def sample_texts(texts: Iterable[str], max_chars: int) -> list[str]:
    """The first texts up to ``max_chars`` characters (the last one cut): a bounded, deterministic sample."""
    sample: list[str] = []
    total = 0
    for text in texts:
        if total >= max_chars:
            break
        piece = text[: max_chars - total]
        sample.append(piece)
        total += len(piece)
    return sample


def sample_hash(texts: list[str], vocab_size: int) -> str:
    """Identity of a tokenizer before training: recipe, vocabulary size and every text, length-prefixed."""
    digest = hashlib.sha256(f"{RECIPE_VERSION}\0{vocab_size}\0".encode())
    for text in texts:
        data = text.encode("utf-8", errors="surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def new_bpe_tokenizer() -> Tokenizer:
    """Untrained byte-level BPE: GPT-2 style pre-tokenisation, no normaliser (exact byte round-trip)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 8192, cache_dir: Path | None = None, max_chars: int = 20_000_000
) -> Path:
    """Train (or find in the cache) a BPE tokenizer on a sample of ``texts``; returns its tokenizer.json.

    The vocabulary may come out smaller than ``vocab_size`` when the sample has too few distinct merges;
    readers take the size from the file, never from the request.
    """
    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size must be at least {MIN_VOCAB} (256 bytes + {EOT}), got {vocab_size}")
    sample = sample_texts(texts, max_chars)
    if not any(sample):
        raise ValueError("cannot train a tokenizer on an empty sample of texts")
    path = (cache_dir or DEFAULT_CACHE) / sample_hash(sample, vocab_size) / TOKENIZER_FILE
    if path.exists():
        return path
    tokenizer = new_bpe_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOT],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(sample, trainer=trainer, length=len(sample))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TOKENIZER_FILE}.{os.getpid()}.tmp")
    tokenizer.save(str(tmp))
    os.replace(tmp, path)  # atomic: concurrent trainers of the same sample write identical files
    return path


def resolve_tokenizer_path(name_or_path: str | Path) -> Path:
    """A tokenizer.json file, or a folder holding one (a cache entry or a run's folder)."""
    path = Path(name_or_path)
    if path.is_dir():
        path = path / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"tokenizer {name_or_path}: no such tokenizer.json; train one or fix the path"
        )
    return path


def load_tokenizer(name_or_path: str | Path) -> Tokenizer:
    """Load an existing tokenizer file by path (see :func:`resolve_tokenizer_path`)."""
    return Tokenizer.from_file(str(resolve_tokenizer_path(name_or_path)))


def eot_id(tokenizer: Tokenizer) -> int | None:
    """Id of ``<|endoftext|>``, or None for a foreign tokenizer that has none."""
    return tokenizer.token_to_id(EOT)


def encode_documents(
    tokenizer: Tokenizer,
    texts: Iterable[str],
    batch_size: int = 256,
) -> Iterator[tuple[np.ndarray, int]]:
    """(token ids ending in <|endoftext|>, UTF-8 byte count) per text, encoded in batches for speed.

    A literal "<|endoftext|>" inside a text is encoded as ordinary bytes, so documents cannot forge a
    boundary and decoding stays exact.
    """
    tokenizer.encode_special_tokens = True
    end = eot_id(tokenizer)
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) >= batch_size:
            yield from _encode_batch(tokenizer, batch, end)
            batch = []
    if batch:
        yield from _encode_batch(tokenizer, batch, end)


def _encode_batch(
    tokenizer: Tokenizer, texts: list[str], end: int | None
) -> Iterator[tuple[np.ndarray, int]]:
    for text, encoding in zip(texts, tokenizer.encode_batch(texts, add_special_tokens=False), strict=True):
        ids = encoding.ids if end is None else [*encoding.ids, end]
        yield np.asarray(ids, dtype=np.int64), len(text.encode("utf-8", errors="surrogatepass"))

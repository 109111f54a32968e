"""Per-shard dedup sketches: computed beside the kept documents while the shard is processed.

For every kept document the shard writes one row to `_dedup/`: its id, where it lives (shard, domain),
what the keep policy needs (quality, length, date), a 128-bit hash of its normalised text for exact
dedup, its LSH band keys and its MinHash signature. The global phase then works on these small rows
alone and never re-reads text unless exact Jaccard verification is asked for.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.dedup.minhash import MinHasher, is_empty
from curate.dedup.settings import DedupConfig
from curate.schema import TIMESTAMP, UNASSIGNED_DOMAIN
from curate.textwindows import whitespace_windows

SKETCH_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("domain", pa.string()),
        pa.field("n_chars", pa.int64()),
        pa.field("crawl_date", TIMESTAMP),
        pa.field("quality", pa.float64()),
        pa.field("exact_hash", pa.binary(16)),
        pa.field("bands", pa.list_(pa.uint64())),
        pa.field("signature", pa.binary()),
    ]
)


def hasher_for(config: DedupConfig) -> MinHasher:
    return MinHasher(num_perm=config.num_perm, bands=config.bands, ngram=config.ngram, seed=config.seed)


def exact_key(text: str) -> bytes:
    """Case and whitespace do not make a new document: hash the lower-cased, space-joined words.

    A long text is hashed window by window (cut at whitespace, which lower-casing and splitting never
    look across) into the same streaming digest, so it never becomes a list of every word.
    """
    digest = xxhash.xxh3_128()
    separator = b""
    for start, stop in whitespace_windows(text):
        words = text[start:stop].lower().split()
        if words:
            digest.update(separator + " ".join(words).encode())
            separator = b" "
    return digest.digest()


def sketch_batch(table: pa.Table, hasher: MinHasher) -> pa.Table:
    """Documents with no words (punctuation only) get no band keys: all such signatures are equal,
    and they would otherwise fall into one giant false cluster."""
    texts = table.column("text").combine_chunks()
    signatures = hasher.signatures(texts)
    band_keys = hasher.band_keys(signatures)
    empty = is_empty(signatures)
    quality = (
        table.column("quality").cast(pa.float64())
        if "quality" in table.column_names
        else pa.nulls(table.num_rows, pa.float64())
    )
    columns = {
        "id": table.column("id"),
        "source": table.column("source"),
        "domain": pc.fill_null(table.column("domain"), UNASSIGNED_DOMAIN),  # the writer's partition name
        "n_chars": pc.utf8_length(texts).cast(pa.int64()),
        "crawl_date": table.column("crawl_date"),
        "quality": quality,
        "exact_hash": pa.array([exact_key(t.as_py()) for t in texts], pa.binary(16)),
        "bands": pa.array(
            [None if e else k for k, e in zip(band_keys, empty, strict=True)], pa.list_(pa.uint64())
        ),
        "signature": pa.array([row.tobytes() for row in np.ascontiguousarray(signatures)], pa.binary()),
    }
    return pa.Table.from_pydict(columns, schema=SKETCH_SCHEMA)

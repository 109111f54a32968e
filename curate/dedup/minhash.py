"""MinHash signatures and LSH band keys for near-duplicate detection, vectorised over a batch.

The permutation family is datasketch's default (``scheme="affine32"``, datasketch >= 2.0): each 32-bit
shingle hash ``x`` is pre-mixed once with the 32-bit MurmurHash3 finaliser, then permutation ``i`` is
``(a_i * x + b_i) mod 2^32`` with ``a_i`` odd, i.e. a bijection on 32-bit values, so the permutation
step adds no collisions (the old ``mod 2^61 - 1`` then truncate-to-32-bits scheme does, and inflates
estimates on large sets). ``a`` and ``b`` are drawn exactly as datasketch draws them, from NumPy's
frozen ``RandomState(seed)`` stream, so for the same shingle hashes our signature *is* datasketch's
``MinHash(num_perm, seed, hashfunc=lambda x: x)`` digest -- the tests check this bit for bit.

Why this family rather than a 64-bit one: 32-bit lanes halve memory traffic and double SIMD width,
so the kernel runs at ~0.25 ns per (shingle, permutation) instead of ~0.45, and signatures take
4 bytes per slot (448 bytes per document at 112 permutations), which is what the LSH index stores.

The kernel concatenates the shingle hashes of the whole batch and, per cache-sized chunk and per
permutation, does one multiply, one add and one ``np.minimum.reduceat`` over the document segments:
no Python runs per document or per shingle.

Empty documents (no words after normalisation: ``""``, whitespace, punctuation only, ``None``) get
the all-``EMPTY_VALUE`` signature, as an empty datasketch MinHash does. All empty documents therefore
share every band key; :func:`is_empty` finds them so the dedup stage can treat them on their own.
"""

from __future__ import annotations

import numpy as np

from curate.dedup.shingles import ShingleBatch, iter_shingle_parts
from curate.utf8_arrays import TextBatch, as_text_array

EMPTY_VALUE = np.uint32(0xFFFFFFFF)

_CHUNK_SHINGLES = 1 << 17  # 512 KB uint32 work buffer: measured best (L2-sized) on Zen 4
_PADDED_WIDTHS = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64])  # short documents skip reduceat...
_MIN_PADDED_DOCS = 16  # ...when a width has enough of them to pay for its 3 * num_perm ufunc calls
_BAND_MULT = 0x9E3779B97F4A7C15


def affine32_permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` uint32 arrays of datasketch's ``affine32`` scheme for ``(num_perm, seed)``.

    ``RandomState`` is NumPy's legacy generator whose stream is frozen, so these never change.
    """
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _fmix32(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser (datasketch's pre-mix), returning a new uint32 array."""
    x = x ^ (x >> np.uint32(16))
    x *= np.uint32(0x85EBCA6B)
    x ^= x >> np.uint32(13)
    x *= np.uint32(0xC2B2AE35)
    x ^= x >> np.uint32(16)
    return x


def _fmix64(h: np.ndarray) -> np.ndarray:
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def _min_reduceat(
    mixed: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int
) -> np.ndarray:
    """``min_x (a_i * x + b_i) mod 2^32`` per document (all non-empty) and permutation, (num_perm, n_docs).

    Chunks are cut at fixed shingle positions, not document boundaries, so one huge document cannot
    blow the cache; a document that straddles chunks is merged with ``np.minimum``.
    """
    seg_starts = offsets[:-1]
    result = np.full((a.size, seg_starts.size), EMPTY_VALUE, dtype=np.uint32)
    work = np.empty(min(chunk, mixed.size), dtype=np.uint32)
    for c0 in range(0, mixed.size, chunk):
        c1 = min(c0 + chunk, mixed.size)
        lo = int(np.searchsorted(seg_starts, c0, side="right")) - 1
        hi = int(np.searchsorted(seg_starts, c1, side="left"))
        segments = np.maximum(seg_starts[lo:hi] - c0, 0)
        x, buf = mixed[c0:c1], work[: c1 - c0]
        chunk_min = np.empty((a.size, hi - lo), dtype=np.uint32)
        for i in range(a.size):  # three ufunc calls per permutation; all the work is inside them
            np.multiply(x, a[i], out=buf)
            np.add(buf, b[i], out=buf)
            np.minimum.reduceat(buf, segments, out=chunk_min[i])
        done = result[:, lo:hi]
        np.minimum(done, chunk_min, out=done)
    return result


def _min_padded(
    mixed: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    width: int,
    a: np.ndarray,
    b: np.ndarray,
    chunk: int,
) -> np.ndarray:
    """The same minimum for documents of at most ``width`` shingles, without ``reduceat``.

    ``reduceat`` pays ~17 ns per segment, which dominates below ~64 shingles (tweets, snippets). Here
    the documents become the columns of a (width, n) matrix, each padded by repeating its first
    shingle (a repeat cannot change a minimum), and the minimum is ``width - 1`` full-row ``np.minimum``
    passes: ~0.3 ns per element whatever the document length.
    """
    result = np.empty((a.size, starts.size), dtype=np.uint32)
    rows = np.arange(width)[:, None]
    step = max(1, chunk // width)
    for d0 in range(0, starts.size, step):
        d1 = min(d0 + step, starts.size)
        index = starts[None, d0:d1] + np.where(rows < counts[None, d0:d1], rows, 0)
        x = mixed[index]
        buf = np.empty_like(x)
        for i in range(a.size):
            np.multiply(x, a[i], out=buf)
            np.add(buf, b[i], out=buf)
            np.minimum.reduce(buf, axis=0, out=result[i, d0:d1])
    return result


def _min_per_document(
    hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int
) -> np.ndarray:
    """Signatures as a (num_perm, n_docs) array: short documents through :func:`_min_padded` by
    power-of-two width, the rest (and sparse widths) through :func:`_min_reduceat`; documents with
    no shingles keep ``EMPTY_VALUE`` (``reduceat`` would give them a neighbour's value).
    """
    n_docs = offsets.size - 1
    out = np.full((a.size, n_docs), EMPTY_VALUE, dtype=np.uint32)
    counts = np.diff(offsets)
    mixed = _fmix32(hashes)
    bucket = np.searchsorted(_PADDED_WIDTHS, counts)  # first width >= count
    by_reduceat = counts > 0
    for k, width in enumerate(_PADDED_WIDTHS):
        docs = np.flatnonzero((bucket == k) & (counts > 0))
        if docs.size >= _MIN_PADDED_DOCS:
            out[:, docs] = _min_padded(mixed, offsets[docs], counts[docs], int(width), a, b, chunk)
            by_reduceat[docs] = False
    docs = np.flatnonzero(by_reduceat)
    if docs.size == n_docs:
        out[:] = _min_reduceat(mixed, offsets, a, b, chunk)
    elif docs.size:
        shingles = mixed[np.repeat(by_reduceat, counts)]
        sub_offsets = np.concatenate([[0], np.cumsum(counts[docs])])
        out[:, docs] = _min_reduceat(shingles, sub_offsets, a, b, chunk)
    return out


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float | np.ndarray:
    """Fraction of equal slots: an unbiased estimate of the shingle-set Jaccard similarity.

    Its standard error is ``sqrt(J (1 - J) / num_perm)`` (0.047 at J = 0.5, 112 permutations).
    Works row-wise on 2-D arrays (returns one estimate per row pair).
    """
    sig_a, sig_b = np.asarray(sig_a), np.asarray(sig_b)
    if sig_a.shape[-1] != sig_b.shape[-1]:
        raise ValueError(f"signatures differ in length: {sig_a.shape[-1]} vs {sig_b.shape[-1]}")
    equal = np.mean(sig_a == sig_b, axis=-1)
    return float(equal) if np.ndim(equal) == 0 else equal


def is_empty(signatures: np.ndarray) -> np.ndarray:
    """True for signatures of documents with no shingles (all slots ``EMPTY_VALUE``)."""
    return np.all(np.asarray(signatures) == EMPTY_VALUE, axis=-1)


class MinHasher:
    """Word n-gram MinHash signatures and LSH band keys for batches of documents.

    Defaults are FineWeb's: 5-gram shingles, 112 permutations in 14 bands of 8 rows (a pair with
    Jaccard 0.75 becomes a candidate with probability 0.77, one with 0.5 with probability 0.05).
    ``permutations=(a, b)`` overrides the seeded ones (e.g. a datasketch MinHash's, for comparison).
    """

    def __init__(
        self,
        num_perm: int = 112,
        bands: int = 14,
        ngram: int = 5,
        seed: int = 0,
        *,
        permutations: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        if num_perm < 1 or bands < 1 or num_perm % bands:
            raise ValueError(f"num_perm ({num_perm}) must be a positive multiple of bands ({bands})")
        if ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {ngram}")
        self.num_perm, self.bands, self.rows = num_perm, bands, num_perm // bands
        self.ngram, self.seed = ngram, seed
        if permutations is None:
            permutations = affine32_permutations(num_perm, seed)
        a, b = (np.asarray(p) for p in permutations)
        if (
            a.shape != (num_perm,)
            or b.shape != (num_perm,)
            or np.any(a > 0xFFFFFFFF)
            or np.any(b > 0xFFFFFFFF)
            or not np.all(a & 1)
        ):  # e.g. a datasketch scheme="legacy" MinHash's 61-bit permutations: a different family
            raise ValueError("permutations must be two arrays of num_perm 32-bit values (affine32), a odd")
        a, b = a.astype(np.uint32), b.astype(np.uint32)
        self.a, self.b = a, b
        self._band_salts = np.array(
            [((i + 1) * _BAND_MULT) & ((1 << 64) - 1) for i in range(bands)], dtype=np.uint64
        )

    def __repr__(self) -> str:
        return (
            f"MinHasher(num_perm={self.num_perm}, bands={self.bands}, ngram={self.ngram}, seed={self.seed})"
        )

    def signatures(self, texts: TextBatch) -> np.ndarray:
        """uint32 signatures, shape (n_docs, num_perm), of a list of str or an Arrow string array.

        The text is shingled and hashed in sub-batches of about a MB (a longer document in parts whose
        signatures are merged by their minimum); a document's signature depends only on its own text
        and the hasher's parameters, never on the rest of the batch.
        """
        texts = as_text_array(texts)
        out = np.full((len(texts), self.num_perm), EMPTY_VALUE, dtype=np.uint32)
        for first, part in iter_shingle_parts(texts, self.ngram, self.seed):
            rows = out[first : first + len(part)]
            np.minimum(rows, self.signatures_from_shingles(part), out=rows)
        return out

    def signatures_from_shingles(self, batch: ShingleBatch) -> np.ndarray:
        """Signatures of already hashed shingles (uint32 hashes in CSR layout), shape (n_docs, num_perm)."""
        hashes = np.asarray(batch.hashes, dtype=np.uint32)
        offsets = np.asarray(batch.offsets, dtype=np.int64)
        sig = _min_per_document(hashes, offsets, self.a, self.b, _CHUNK_SHINGLES)
        return np.ascontiguousarray(sig.T)

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """One uint64 key per (document, band): a hash of the band's ``rows`` signature values.

        Two documents share a band key iff (up to 2^-64 chance) they agree on all rows of that band;
        the band index is mixed in, so keys of different bands never need separate tables.
        """
        sig = np.asarray(signatures)
        if sig.ndim != 2 or sig.shape[1] != self.num_perm:
            raise ValueError(f"expected signatures of shape (n_docs, {self.num_perm}), got {sig.shape}")
        rows = sig.reshape(sig.shape[0], self.bands, self.rows).astype(np.uint64)
        keys = np.broadcast_to(self._band_salts, (sig.shape[0], self.bands)).copy()
        for r in range(self.rows):
            keys ^= rows[:, :, r]
            _fmix64(keys)
        return keys

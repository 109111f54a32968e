"""Deduplication: MinHash signatures and LSH band keys for near-duplicate detection.

``MinHasher(num_perm=112, bands=14, ngram=5, seed=0).signatures(texts)`` is the compute kernel of
fuzzy dedup (FineWeb's recipe); see :mod:`curate.dedup.minhash` for the permutation family and
:mod:`curate.dedup.shingles` for the text normalisation and shingle hashing.
"""

from curate.dedup.minhash import EMPTY_VALUE, MinHasher, affine32_permutations, estimate_jaccard, is_empty
from curate.dedup.shingles import ShingleBatch, normalize_words, reference_shingle_hashes, shingle_hashes

__all__ = [
    "EMPTY_VALUE",
    "MinHasher",
    "ShingleBatch",
    "affine32_permutations",
    "estimate_jaccard",
    "is_empty",
    "normalize_words",
    "reference_shingle_hashes",
    "shingle_hashes",
]

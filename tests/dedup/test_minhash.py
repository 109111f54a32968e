"""MinHash signatures: bit-identical to datasketch, accurate against exact Jaccard on real edited
documents, reproducible, batch-invariant, with defined results for empty documents.

Real text that is on every machine: the Python standard library's source files. Book passages from
../shared/data are used where that folder exists.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curate.dedup import (
    EMPTY_VALUE,
    MinHasher,
    estimate_jaccard,
    is_empty,
    normalize_words,
    shingle_hashes,
)
from curate.dedup import minhash as minhash_module
from curate.textsources import book_passages, stdlib_sources

datasketch = pytest.importorskip("datasketch")

K = 112
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def documents() -> list[str]:
    """40 real standard-library modules of 2-60 KB (code, comments and docstrings)."""
    docs = [text for _, text in stdlib_sources() if 2_000 < len(text) < 60_000]
    assert len(docs) >= 40, "the standard library should have plenty of mid-sized modules"
    return docs[:40]


def edit(text: str, rate: float, rng: random.Random) -> str:
    """A copy of ``text`` with about ``rate`` of its words replaced, deleted or followed by an insert."""
    words = text.split()
    out: list[str] = []
    for word in words:
        roll = rng.random()
        if roll < rate / 3:
            out.append(rng.choice(words))
        elif roll < 2 * rate / 3:
            continue
        elif roll < rate:
            out.extend([word, rng.choice(words)])
        else:
            out.append(word)
    return " ".join(out)


def shingle_set(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """Exact shingles as word tuples (independent of our hashing), short documents as one shingle."""
    words = normalize_words(text)
    if not words:
        return set()
    width = min(n, len(words))
    return {tuple(words[i : i + width]) for i in range(len(words) - width + 1)}


def exact_jaccard(a: str, b: str) -> float:
    sa, sb = shingle_set(a), shingle_set(b)
    return len(sa & sb) / len(sa | sb)


@pytest.fixture(scope="module")
def edited_pairs(documents: list[str]) -> list[tuple[str, str, float]]:
    """(original, edited copy, exact shingle Jaccard) over edit rates giving J from ~0.05 to ~0.95."""
    rng = random.Random(20240611)
    rates = [0.01, 0.03, 0.06, 0.1, 0.2, 0.35]
    pairs = []
    for i, doc in enumerate(documents):
        other = edit(doc, rates[i % len(rates)], rng)
        pairs.append((doc, other, exact_jaccard(doc, other)))
    return pairs


def sampling_sd(j: float, k: int = K) -> float:
    return math.sqrt(max(j * (1 - j), 1 / k) / k)


def datasketch_digest(hashes: np.ndarray, seed: int, num_perm: int = K) -> np.ndarray:
    m = datasketch.MinHash(num_perm=num_perm, seed=seed, hashfunc=lambda x: x)
    if hashes.size:
        m.update_batch(hashes.tolist())
    return m.hashvalues


# ---------------------------------------------------------------------------------------------------
# Agreement with datasketch
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_signatures_are_datasketch_digests_of_the_same_shingles(documents: list[str], seed: int) -> None:
    """Same shingle hashes + same seed: our vectorised signature equals datasketch's, bit for bit."""
    docs = documents[:12] + ["short text", ""]
    sigs = MinHasher(num_perm=K, seed=seed).signatures(docs)
    shingles = shingle_hashes(docs, seed=seed)
    for i in range(len(docs)):
        np.testing.assert_array_equal(sigs[i], datasketch_digest(shingles.doc(i), seed))


def test_datasketch_permutations_can_be_plugged_in(documents: list[str]) -> None:
    ref = datasketch.MinHash(num_perm=64, seed=99, hashfunc=lambda x: x)
    hasher = MinHasher(num_perm=64, bands=8, permutations=tuple(ref.permutations))
    shingles = shingle_hashes(documents[:3])
    sigs = hasher.signatures_from_shingles(shingles)
    for i in range(3):
        np.testing.assert_array_equal(sigs[i], datasketch_digest(shingles.doc(i), 99, num_perm=64))
    legacy = datasketch.MinHash(num_perm=64, scheme="legacy")
    with pytest.raises(ValueError, match="affine32"):
        MinHasher(num_perm=64, bands=8, permutations=tuple(legacy.permutations))


def test_estimates_agree_with_datasketch_default_pipeline(edited_pairs: list) -> None:
    """datasketch with its own hashing (SHA-1 of the shingle strings) and its own seed estimates the
    same Jaccard as we do, within the sampling error of two independent estimates."""
    hasher = MinHasher()
    zs = []
    for a, b, j in edited_pairs:
        ours = estimate_jaccard(*hasher.signatures([a, b]))
        theirs = []
        for text in (a, b):
            m = datasketch.MinHash(num_perm=K, seed=1)
            m.update_batch([" ".join(s).encode() for s in shingle_set(text)])
            theirs.append(m)
        z = (ours - theirs[0].jaccard(theirs[1])) / (math.sqrt(2) * sampling_sd(j))
        assert abs(z) < 4.5, (ours, theirs[0].jaccard(theirs[1]), j)
        zs.append(z)
    assert abs(np.mean(zs)) < 3 / math.sqrt(len(zs))
    assert 0.3 < np.mean(np.square(zs)) < 2.0


def test_estimates_match_exact_jaccard_on_edited_real_documents(edited_pairs: list) -> None:
    """Unbiased, with the binomial variance J(1-J)/K: mean error ~0, mean squared z-score ~1."""
    hasher = MinHasher()
    js = np.array([j for _, _, j in edited_pairs])
    assert js.min() < 0.3 and js.max() > 0.85, "the edit rates should spread J over its range"
    sigs = hasher.signatures([t for a, b, _ in edited_pairs for t in (a, b)])
    estimates = estimate_jaccard(sigs[0::2], sigs[1::2])
    z = (estimates - js) / np.array([sampling_sd(j) for j in js])
    assert np.all(np.abs(z) < 4.5), list(zip(estimates, js, strict=True))
    assert abs(z.mean()) < 3 / math.sqrt(len(z))
    assert 0.3 < np.mean(np.square(z)) < 2.0


def test_identical_and_unrelated_documents(documents: list[str]) -> None:
    hasher = MinHasher()
    sigs = hasher.signatures([documents[0], documents[0], documents[1]])
    assert estimate_jaccard(sigs[0], sigs[1]) == 1.0
    assert estimate_jaccard(sigs[0], sigs[2]) < 0.1
    assert exact_jaccard(documents[0], documents[1]) < 0.05


# ---------------------------------------------------------------------------------------------------
# Reproducibility and batch invariance
# ---------------------------------------------------------------------------------------------------


def test_same_seed_same_signatures_other_seed_different(documents: list[str]) -> None:
    docs = documents[:5]
    first, again = MinHasher(seed=7).signatures(docs), MinHasher(seed=7).signatures(docs)
    other = MinHasher(seed=8).signatures(docs)
    np.testing.assert_array_equal(first, again)
    assert np.mean(first == other) < 0.05


def test_pinned_values_do_not_drift() -> None:
    """Signatures stored in an index must stay comparable across releases and machines."""
    sig = MinHasher().signatures(["The quick brown fox jumps over the lazy dog"])
    assert shingle_hashes(["The quick brown fox jumps over the lazy dog"]).hashes.tolist() == [
        690893239, 419363639, 3199471390, 2189207382, 2829264398,
    ]  # fmt: skip
    assert sig[0, :4].tolist() == [40653022, 847246107, 1306056982, 638059087]
    assert hashlib.sha256(sig.tobytes()).hexdigest()[:16] == "ccf5b92ab741e4b4"


def test_independent_of_pythonhashseed() -> None:
    code = (
        "import hashlib, sys; from curate.dedup import MinHasher; "
        "s = MinHasher().signatures(['Ein Käse, zwei Käse: the same words again and again.']); "
        "print(hashlib.sha256(s.tobytes()).hexdigest())"
    )
    outputs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
        )
        assert done.returncode == 0, done.stderr
        outputs.add(done.stdout.strip())
    assert len(outputs) == 1


def test_signature_does_not_depend_on_the_rest_of_the_batch(
    documents: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone, in any order, between empty docs, as Arrow string/large_string, sliced or chunked, and
    with chunks so small that documents straddle them: always the same signature."""
    hasher = MinHasher()
    docs = documents[:6]
    alone = np.stack([hasher.signatures([d])[0] for d in docs])
    rng = random.Random(3)
    order = list(range(len(docs)))
    rng.shuffle(order)
    np.testing.assert_array_equal(hasher.signatures([docs[i] for i in order]), alone[order])
    mixed = ["", docs[0], None, "  ", docs[1], "?", docs[2]]
    np.testing.assert_array_equal(hasher.signatures(mixed)[[1, 4, 6]], alone[:3])
    for arrow in (pa.array(docs, pa.string()), pa.array(docs, pa.large_string())):
        np.testing.assert_array_equal(hasher.signatures(arrow), alone)
    np.testing.assert_array_equal(hasher.signatures(pa.array(["x"] + docs, pa.string()).slice(1)), alone)
    np.testing.assert_array_equal(hasher.signatures(pa.chunked_array([docs[:2], docs[2:]])), alone)
    monkeypatch.setattr(minhash_module, "_CHUNK_SHINGLES", 257)
    np.testing.assert_array_equal(hasher.signatures(docs), alone)


def test_words_never_join_across_documents() -> None:
    """'abc' + 'def' in one buffer must not become the word 'abcdef'."""
    hasher = MinHasher()
    texts = ["one two three four abc", "def five six seven eight"]
    apart = np.stack([hasher.signatures([t])[0] for t in texts])
    np.testing.assert_array_equal(hasher.signatures(texts), apart)


# ---------------------------------------------------------------------------------------------------
# Band keys, empty documents, parameters
# ---------------------------------------------------------------------------------------------------


def test_band_keys(documents: list[str]) -> None:
    hasher = MinHasher(num_perm=112, bands=14)
    sigs = hasher.signatures(documents[:4] + [documents[0]])
    keys = hasher.band_keys(sigs)
    assert keys.shape == (5, 14) and keys.dtype == np.uint64
    np.testing.assert_array_equal(keys[0], keys[4])
    changed = sigs[0].copy()
    changed[8 * 3 + 5] ^= 1  # one value in band 3
    diff = hasher.band_keys(changed[None, :])[0] != keys[0]
    assert diff.tolist() == [b == 3 for b in range(14)]
    same_rows = np.tile(sigs[0, :8], 14)[None, :]  # identical content in every band: keys still differ
    assert len(set(hasher.band_keys(same_rows)[0].tolist())) == 14
    assert hasher.band_keys(np.zeros((0, 112), np.uint32)).shape == (0, 14)
    with pytest.raises(ValueError, match="shape"):
        hasher.band_keys(sigs[:, :100])


def test_near_duplicates_share_band_keys_unrelated_do_not(edited_pairs: list) -> None:
    hasher = MinHasher()
    close = [(a, b) for a, b, j in edited_pairs if j > 0.9]  # a candidate with P > 0.9996 (14 x 8)
    assert close
    for a, b in close:
        keys = hasher.band_keys(hasher.signatures([a, b]))
        assert np.any(keys[0] == keys[1])
    far = hasher.band_keys(hasher.signatures([a for a, _, _ in edited_pairs]))
    shared = {k for row in far for k in row.tolist()}
    assert len(shared) == far.size  # 40 unrelated modules: no band key in common


def test_empty_documents_have_the_empty_signature() -> None:
    hasher = MinHasher()
    texts = ["", "   \n\t ", "!!! -- ...", None, "two words", "Five words make one shingle"]
    sigs = hasher.signatures(texts)
    assert sigs.shape == (6, K) and sigs.dtype == np.uint32
    assert is_empty(sigs).tolist() == [True, True, True, True, False, False]
    assert np.all(sigs[:4] == EMPTY_VALUE)
    empty_ds = datasketch.MinHash(num_perm=K, seed=0)
    np.testing.assert_array_equal(sigs[0], empty_ds.hashvalues)
    assert hasher.signatures([]).shape == (0, K)
    assert hasher.signatures(["TWO words!"])[0].tolist() == sigs[4].tolist()  # normalised alike


def test_short_documents_are_one_shingle_of_all_words() -> None:
    batch = shingle_hashes(["a b c", "a b c d e", "a b c d e f", ""])
    assert np.diff(batch.offsets).tolist() == [1, 1, 2, 0]


def test_parameter_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="multiple of bands"):
        MinHasher(num_perm=100, bands=14)
    with pytest.raises(ValueError, match="ngram"):
        MinHasher(ngram=0)
    with pytest.raises(ValueError, match="seed"):
        MinHasher(seed=-1)


def test_estimate_jaccard_shapes() -> None:
    a = np.arange(8, dtype=np.uint32)
    b = a.copy()
    b[:2] = 99
    assert estimate_jaccard(a, b) == 0.75
    np.testing.assert_allclose(estimate_jaccard(np.stack([a, a]), np.stack([a, b])), [1.0, 0.75])
    with pytest.raises(ValueError, match="length"):
        estimate_jaccard(a, a[:4])


def test_real_book_passages_and_their_edits(shared: Path) -> None:
    """Gutenberg prose from ../shared/data: an edited passage is found, other passages are not."""
    books = shared / "domains" / "books"
    if not books.is_dir():
        pytest.skip(f"{books} is absent")
    passages = [p for _, p in book_passages(books, passage_chars=5000)][200:230]
    rng = random.Random(11)
    edited = [edit(p, 0.005, rng) for p in passages]  # J ~ 0.95: a candidate with P = 1 - 2e-7
    hasher = MinHasher()
    sigs = hasher.signatures(passages + edited)
    n = len(passages)
    for i in range(n):
        j = exact_jaccard(passages[i], edited[i])
        assert j > 0.9
        assert abs(estimate_jaccard(sigs[i], sigs[n + i]) - j) < 4.5 * sampling_sd(j)
    keys = hasher.band_keys(sigs)
    assert all(np.any(keys[i] == keys[n + i]) for i in range(n))
    assert len({k for row in keys[:n] for k in row.tolist()}) == n * hasher.bands

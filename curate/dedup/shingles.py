"""Word n-gram shingles of normalised text, hashed to 32 bits with no Python per word or per shingle.

Near-duplicate detection compares *sets of word 5-grams* (FineWeb / DataTrove recipe). Building those
sets in Python (regex, ``" ".join`` per shingle, a hash call per shingle) costs more than the MinHash
itself, so this module works on the raw UTF-8 bytes of a whole batch of documents at once:

1. **Normalise** (the definition lives in :func:`normalize_words`, the slow executable reference):
   each character is lowercased with its simple (one-to-one) Unicode mapping, and a *word* is a
   maximal run of letters, digits and combining marks (Unicode categories ``L*``, ``N*``, ``M*``).
   Everything else -- whitespace, punctuation, symbols, control and format characters -- separates
   words, which is "lowercase, punctuation to spaces, split on whitespace" as DataTrove's
   ``simplify_text`` does it, with Unicode categories instead of a fixed punctuation list.
   Two documented approximations: the two dozen characters whose lowercase has a different UTF-8
   length (U+212A KELVIN SIGN, U+1E9E, U+023A, ...) stay as they are, which keeps the byte buffer's
   layout fixed; and categories come from the running Python's ``unicodedata`` (only characters newly
   assigned by a later Unicode version can change class between Python versions).
2. **Word hashes** (64 bit): the word's UTF-8 bytes are read as little-endian 8-byte chunks, each folded
   in with the MurmurHash3 64-bit finaliser, starting from the length and a seed. Vectorised as
   unaligned 8-byte gathers from the batch buffer, one round per 8 bytes for the words still running
   (16 rounds; the rare longer word is finished in Python).
3. **Shingle hashes** (32 bit): ``fmix64(sum_k R_k * word_hash[j + k] + m * K ^ seed) >> 32`` over the
   ``m`` words of each window (``m = ngram``, or all words of a document shorter than ``ngram``, which
   then has exactly one shingle). Computed as ``ngram`` shifted multiply-adds over the whole batch.

Why 32-bit shingle hashes: the MinHash permutations (see :mod:`curate.dedup.minhash`) are datasketch's
``affine32`` scheme, which permutes 32-bit values, and 32 bits are enough: two documents of 10,000
shingles share a spurious collision with probability ~2e-2 per pair, moving the Jaccard estimate by
1e-4, far below MinHash's own sampling error (~0.05 at 112 permutations).

Nothing depends on ``PYTHONHASHSEED``, the batch composition or the machine: every document's
shingles are a function of its text, ``ngram`` and ``seed`` only.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from curate.utf8_arrays import TextBatch, as_text_array, utf8_buffers

_M64 = (1 << 64) - 1
_FMIX_C1 = 0xFF51AFD7ED558CCD
_FMIX_C2 = 0xC4CEB9FE1A85EC53
_LEN_MULT = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads word lengths over the 64-bit state
_WIDTH_MULT = 0xD6E8FEB86659FD93  # separates an m-word shingle of a short document from ngram-word ones
_VECTOR_ROUNDS = 16  # words longer than 16 * 8 bytes (rare: URLs, base64) are hashed one by one
_BATCH_BYTES = 1 << 20  # per-byte work arrays of a sub-batch stay in cache (measured: 1-2 MB best)

_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [_M64], dtype=np.uint64)


# --------------------------------------------------------------------------------------------------
# Scalar reference: the definition, used by tests and for the rare very long word.
# --------------------------------------------------------------------------------------------------


def _fmix64_int(h: int) -> int:
    """MurmurHash3's 64-bit finaliser on a Python int: a bijection that avalanches every input bit."""
    h ^= h >> 33
    h = (h * _FMIX_C1) & _M64
    h ^= h >> 33
    h = (h * _FMIX_C2) & _M64
    return h ^ (h >> 33)


def _splitmix64_stream(seed: int, count: int) -> list[int]:
    """``count`` well-mixed 64-bit constants from ``seed``, independent of NumPy's RNG stream policy."""
    state = seed & _M64
    out = []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & _M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        out.append(z ^ (z >> 31))
    return out


@dataclass(frozen=True)
class _HashKeys:
    """Seeded constants of the word and shingle hashes (derived once per seed and ngram)."""

    word_seed: int
    shingle_seed: int
    ngram_mults: tuple[int, ...]  # odd, so each word position is a bijection of the word hash


@functools.lru_cache(maxsize=64)
def _hash_keys(seed: int, ngram: int) -> _HashKeys:
    stream = _splitmix64_stream(seed ^ 0x5EED_C0DE_D00D_F00D, 2 + ngram)
    return _HashKeys(stream[0], stream[1], tuple(x | 1 for x in stream[2:]))


def _lower_char(ch: str) -> str:
    """Simple lowercase mapping, kept only when it keeps the character's UTF-8 length (see module doc)."""
    low = ch.lower()
    same_length = len(low.encode("utf-8", "surrogatepass")) == len(ch.encode("utf-8", "surrogatepass"))
    return low if len(low) == 1 and same_length else ch


def _is_word_char(ch: str) -> bool:
    """Letters, digits and combining marks make words; everything else separates them."""
    return unicodedata.category(ch)[0] in "LNM"


def normalize_words(text: str) -> list[str]:
    """The words of ``text`` after normalisation: the executable definition of the shingler's input.

    Slow (Python per character); :func:`shingle_hashes` computes the same thing vectorised.
    """
    words: list[str] = []
    current: list[str] = []
    for ch in text:
        if _is_word_char(ch):
            current.append(_lower_char(ch))
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


def word_hash(word: str | bytes, seed: int = 0) -> int:
    """64-bit hash of one normalised word (its UTF-8 bytes): the scalar definition of the vectorised one."""
    data = word.encode("utf-8") if isinstance(word, str) else bytes(word)
    return _word_hash_bytes(data, _hash_keys(seed, 1).word_seed)


def _word_hash_bytes(data: bytes, word_seed: int) -> int:
    h = ((len(data) * _LEN_MULT) & _M64) ^ word_seed
    for start in range(0, max(len(data), 1), 8):
        chunk = int.from_bytes(data[start : start + 8], "little")
        h = _fmix64_int(h ^ chunk)
    return h


def reference_shingle_hashes(text: str, ngram: int = 5, seed: int = 0) -> list[int]:
    """The 32-bit shingle hashes of one document, in order, computed the slow and obvious way.

    Exists so tests can check the vectorised :func:`shingle_hashes` against a definition that fits on
    a screen. A document with no words has no shingles; one with fewer than ``ngram`` words has one.
    """
    keys = _hash_keys(seed, ngram)
    hashes = [_word_hash_bytes(w.encode("utf-8"), keys.word_seed) for w in normalize_words(text)]
    if not hashes:
        return []
    width = min(ngram, len(hashes))
    out = []
    for j in range(len(hashes) - width + 1):
        acc = sum(r * h for r, h in zip(keys.ngram_mults, hashes[j : j + width], strict=False))
        acc = (acc + width * _WIDTH_MULT) & _M64
        out.append(_fmix64_int(acc ^ keys.shingle_seed) >> 32)
    return out


# --------------------------------------------------------------------------------------------------
# Vectorised implementation.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShingleBatch:
    """Shingle hashes of a batch of documents: document ``i`` owns ``hashes[offsets[i]:offsets[i+1]]``.

    Kept flat (CSR-style) because that is what the MinHash kernel reduces over; duplicates within a
    document are kept (they cannot change a minimum), so a document's set is ``set(doc(i))``.
    """

    hashes: np.ndarray  # uint32
    offsets: np.ndarray  # int64, n_docs + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def doc(self, i: int) -> np.ndarray:
        return self.hashes[self.offsets[i] : self.offsets[i + 1]]


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 64-bit finaliser, in place on a uint64 array (wrapping multiply is the mod 2^64)."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(_FMIX_C1)
    h ^= h >> np.uint64(33)
    h *= np.uint64(_FMIX_C2)
    h ^= h >> np.uint64(33)
    return h


@functools.lru_cache(maxsize=1)
def _bmp_tables() -> tuple[np.ndarray, np.ndarray]:
    """Word-character flag and lowercase code point for every BMP code point (built once, ~60 ms)."""
    chars = [chr(c) for c in range(0x10000)]
    is_word = np.fromiter((_is_word_char(ch) for ch in chars), dtype=bool, count=0x10000)
    lower = np.fromiter((ord(_lower_char(ch)) for ch in chars), dtype=np.uint32, count=0x10000)
    return is_word, lower


def _classify_code_points(cp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_word, lowercase) for decoded code points: table lookups, Python only per distinct astral one."""
    table_word, table_lower = _bmp_tables()
    bmp = cp < 0x10000
    clipped = np.where(bmp, cp, 0)
    is_word = table_word[clipped]
    lower = table_lower[clipped]
    if not bmp.all():
        astral = np.flatnonzero(~bmp)
        uniq, inverse = np.unique(cp[astral], return_inverse=True)
        # > U+10FFFF only comes from malformed UTF-8 (Arrow data not validated on read): a separator
        chars = [chr(int(c)) if c <= 0x10FFFF else None for c in uniq]
        word_of = [ch is not None and _is_word_char(ch) for ch in chars]
        lower_of = [int(c) if ch is None else ord(_lower_char(ch)) for c, ch in zip(uniq, chars, strict=True)]
        is_word[astral] = np.array(word_of, dtype=bool)[inverse]
        lower[astral] = np.array(lower_of, dtype=np.uint32)[inverse]
    return is_word, lower


def _decode_leads(buf: np.ndarray, leads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code point and byte length of the multi-byte UTF-8 sequences starting at ``leads``."""
    b0 = buf[leads].astype(np.uint32)
    nbytes = 2 + (b0 >= 0xE0).astype(np.int64) + (b0 >= 0xF0)
    b1 = buf[leads + 1].astype(np.uint32) & 0x3F
    b2 = buf[leads + 2].astype(np.uint32) & 0x3F
    b3 = buf[leads + 3].astype(np.uint32) & 0x3F
    cp2 = ((b0 & 0x1F) << 6) | b1
    cp3 = ((b0 & 0x0F) << 12) | (b1 << 6) | b2
    cp4 = ((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3
    cp = np.where(nbytes == 2, cp2, np.where(nbytes == 3, cp3, cp4))
    return cp, nbytes


def _encode_same_length(buf: np.ndarray, leads: np.ndarray, nbytes: np.ndarray, cp: np.ndarray) -> None:
    """Overwrite the UTF-8 sequences at ``leads`` with code points ``cp`` of the same byte length."""
    for n, prefix in ((2, 0xC0), (3, 0xE0), (4, 0xF0)):
        sel = nbytes == n
        if not sel.any():
            continue
        pos, c = leads[sel], cp[sel]
        buf[pos] = (prefix | (c >> (6 * (n - 1)))).astype(np.uint8)
        for k in range(1, n):
            buf[pos + k] = (0x80 | ((c >> (6 * (n - 1 - k))) & 0x3F)).astype(np.uint8)


def _normalise_bytes(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowercased copy of the UTF-8 bytes (padded with 8 zero bytes) and a word-byte mask (padded by 1
    on each side so word edges are plain transitions).

    ASCII is handled with whole-buffer arithmetic; only the (rare) multi-byte characters are decoded.
    """
    n = data.size
    buf = np.zeros(n + 8, dtype=np.uint8)
    low = buf[:n]
    upper = (data - np.uint8(65)) < 26
    np.add(data, upper.view(np.uint8) << np.uint8(5), out=low)
    mask = np.zeros(n + 2, dtype=bool)
    word = mask[1 : n + 1]
    np.less(low - np.uint8(97), 26, out=word)
    word |= (low - np.uint8(48)) < 10
    word |= low >= 0x80
    leads = np.flatnonzero(data >= 0xC0)
    if leads.size:
        cp, nbytes = _decode_leads(buf, leads)
        is_word, lower = _classify_code_points(cp)
        sep = ~is_word
        for k in range(4):
            word[leads[sep & (nbytes > k)] + k] = False
        changed = lower != cp
        if changed.any():
            _encode_same_length(buf, leads[changed], nbytes[changed], lower[changed])
    return buf, mask


def _word_spans(mask: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Byte start/end of every word, split at document boundaries, and each document's word range.

    A word byte starts a word when the byte before it is not a word byte *or* begins a document, so
    "...abc" + "def..." in adjacent documents stay two words.
    """
    word = mask[1:-1]
    first = word & ~mask[:-2]
    last = word & ~mask[2:]
    inner = offsets[1:-1]
    inner = inner[(inner > 0) & (inner < word.size)]
    first[inner] = word[inner]
    last[inner - 1] = word[inner - 1]
    starts = np.flatnonzero(first)
    ends = np.flatnonzero(last) + 1
    return starts, ends, np.searchsorted(starts, offsets)


def _word_hashes(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, word_seed: int) -> np.ndarray:
    """Vectorised :func:`word_hash`: one gather + finaliser per 8 bytes of word, all words at once."""
    chunks = np.ndarray(shape=(buf.size - 7,), dtype="<u8", buffer=buf, strides=(1,))
    lengths = ends - starts
    h = lengths.astype(np.uint64) * np.uint64(_LEN_MULT)
    h ^= np.uint64(word_seed)
    h ^= chunks[starts] & _MASKS[np.minimum(lengths, 8)]
    _fmix64(h)
    todo = np.flatnonzero(lengths > 8)
    for r in range(1, _VECTOR_ROUNDS):
        if not todo.size:
            return h
        rest = lengths[todo] - 8 * r
        part = h[todo] ^ (chunks[starts[todo] + 8 * r] & _MASKS[np.minimum(rest, 8)])
        h[todo] = _fmix64(part)
        todo = todo[rest > 8]
    for i in todo.tolist():  # very long words: finish them from the state after the vector rounds
        state = int(h[i])
        for start in range(int(starts[i]) + 8 * _VECTOR_ROUNDS, int(ends[i]), 8):
            chunk = int.from_bytes(buf[start : min(start + 8, int(ends[i]))].tobytes(), "little")
            state = _fmix64_int(state ^ chunk)
        h[i] = state
    return h


def _ngram_hashes(
    words: np.ndarray, doc_words: np.ndarray, ngram: int, keys: _HashKeys
) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of every ``ngram``-word window inside each document (one shorter window for a
    document with fewer words), computed as ``ngram`` shifted multiply-adds over the whole batch."""
    n_words = np.diff(doc_words)
    total = words.size
    padded = np.concatenate([words, np.zeros(ngram - 1, dtype=np.uint64)])
    acc = padded[:total] * np.uint64(keys.ngram_mults[0])
    short = np.flatnonzero((n_words > 0) & (n_words < ngram))
    short_first = doc_words[short]
    short_acc = np.zeros(short.size, dtype=np.uint64)
    tmp = np.empty(total, dtype=np.uint64)
    for k in range(ngram):
        if k:
            np.multiply(padded[k : k + total], np.uint64(keys.ngram_mults[k]), out=tmp)
            acc += tmp
        done = n_words[short] == k + 1
        short_acc[done] = acc[short_first[done]]
    valid = np.ones(total, dtype=bool)
    for k in range(1, ngram):  # the last ngram-1 windows of a document run into the next one
        valid[doc_words[1:][n_words >= k] - k] = False
    acc += np.uint64((ngram * _WIDTH_MULT) & _M64)
    valid[short_first] = True
    acc[short_first] = short_acc + n_words[short].astype(np.uint64) * np.uint64(_WIDTH_MULT)
    shingles = acc[valid]
    shingles ^= np.uint64(keys.shingle_seed)
    hashes = (_fmix64(shingles) >> np.uint64(32)).astype(np.uint32)
    counts = np.where(n_words >= ngram, n_words - ngram + 1, (n_words > 0).astype(np.int64))
    return hashes, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _sub_batches(offsets: np.ndarray, target_bytes: int) -> Iterator[tuple[int, int]]:
    """Document ranges of about ``target_bytes`` each (a bigger document gets a range of its own)."""
    n_docs = offsets.size - 1
    start = 0
    while start < n_docs:
        stop = int(np.searchsorted(offsets, offsets[start] + target_bytes, side="right")) - 1
        stop = min(max(stop, start + 1), n_docs)
        yield start, stop
        start = stop


def _shingle_buffers(data: np.ndarray, offsets: np.ndarray, ngram: int, keys: _HashKeys) -> ShingleBatch:
    buf, mask = _normalise_bytes(data)
    starts, ends, doc_words = _word_spans(mask, offsets)
    words = _word_hashes(buf, starts, ends, keys.word_seed)
    hashes, doc_shingles = _ngram_hashes(words, doc_words, ngram, keys)
    return ShingleBatch(hashes, doc_shingles)


def iter_shingle_batches(
    texts: TextBatch, ngram: int = 5, seed: int = 0, batch_bytes: int = _BATCH_BYTES
) -> Iterator[ShingleBatch]:
    """Shingle hashes of consecutive sub-batches of about ``batch_bytes`` of text each.

    Sub-batching bounds memory (the work arrays are ~20 bytes per input byte) and keeps them in cache;
    it cannot change any document's hashes.
    """
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram}")
    keys = _hash_keys(seed, ngram)
    data, offsets = utf8_buffers(as_text_array(texts))
    for lo, hi in _sub_batches(offsets, batch_bytes):
        part = data[offsets[lo] : offsets[hi]]
        yield _shingle_buffers(part, offsets[lo : hi + 1] - offsets[lo], ngram, keys)


def iter_shingle_parts(
    texts: TextBatch, ngram: int = 5, seed: int = 0, batch_bytes: int = _BATCH_BYTES
) -> Iterator[tuple[int, ShingleBatch]]:
    """(index of its first document, shingles) of consecutive parts of about ``batch_bytes`` of text.

    A document longer than ``batch_bytes`` comes as several one-document parts (see
    :func:`_long_document_parts`): each holds only shingles of the document and together they hold all
    of them, so a set function (MinHash: a minimum) merges them exactly, in bounded memory.
    """
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram}")
    keys = _hash_keys(seed, ngram)
    data, offsets = utf8_buffers(as_text_array(texts))
    for lo, hi in _sub_batches(offsets, batch_bytes):
        part = data[offsets[lo] : offsets[hi]]
        if hi - lo == 1 and part.size > batch_bytes:
            for shingles in _long_document_parts(part, ngram, keys, batch_bytes):
                yield lo, shingles
        else:
            yield lo, _shingle_buffers(part, offsets[lo : hi + 1] - offsets[lo], ngram, keys)


_ASCII_SEPARATOR = re.compile(rb"[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]")
"""ASCII bytes that are not letters or digits: they separate words and never sit inside a character."""


def _long_document_parts(
    data: np.ndarray, ngram: int, keys: _HashKeys, window_bytes: int
) -> Iterator[ShingleBatch]:
    """One long document's shingles in blocks: its word hashes window by window (windows cut at an ASCII
    separator byte, which no word spans), then the shingles of blocks of words that overlap by
    ``ngram - 1`` words, so every shingle is in a block and every block has at least ``ngram`` words
    (a shorter one would make the short-document shingle the document does not have)."""
    words = np.concatenate(
        [_window_word_hashes(window, keys) for window in _byte_windows(data, window_bytes)]
    )
    blocks = range(0, max(words.size - ngram + 1, 1), _BLOCK_WORDS)
    for first in blocks:
        block = words[first : first + _BLOCK_WORDS + ngram - 1]
        yield ShingleBatch(*_ngram_hashes(block, np.array([0, block.size]), ngram, keys))


_BLOCK_WORDS = 1 << 17


def _byte_windows(data: np.ndarray, size: int) -> Iterator[np.ndarray]:
    start = 0
    while data.size - start > size:
        match = _ASCII_SEPARATOR.search(data, start + size)
        if match is None:
            break
        yield data[start : match.start()]
        start = match.start()
    yield data[start:]


def _window_word_hashes(window: np.ndarray, keys: _HashKeys) -> np.ndarray:
    buf, mask = _normalise_bytes(window)
    starts, ends, _ = _word_spans(mask, np.array([0, window.size]))
    return _word_hashes(buf, starts, ends, keys.word_seed)


def shingle_hashes(texts: TextBatch, ngram: int = 5, seed: int = 0) -> ShingleBatch:
    """32-bit word ``ngram``-shingle hashes of every document in ``texts`` (list of str, or Arrow).

    ``None`` and empty or word-less texts have no shingles.
    """
    parts = list(iter_shingle_batches(texts, ngram, seed))
    if not parts:
        return ShingleBatch(np.zeros(0, np.uint32), np.zeros(1, np.int64))
    hashes = np.concatenate([p.hashes for p in parts])
    bases = np.cumsum([0] + [p.hashes.size for p in parts[:-1]])
    tails = [p.offsets[1:] + base for p, base in zip(parts, bases, strict=True)]
    return ShingleBatch(hashes, np.concatenate([parts[0].offsets[:1], *tails]).astype(np.int64))

"""fastText's supervised prediction, compiled (numba) over a batch's UTF-8 bytes: the toxicity and quality
classifiers score a whole Arrow column in one pass.

Why not fastText's own `predict`: it wants one Python string per document, reads each through a C++
stream byte by byte and looks every word up in a 30-million-slot table (a cache miss per word). Here the
words are looked up in a table sized to the vocabulary, the word n-gram rows (random reads in a ~65 MB
matrix, most of the cost) are fetched ahead of use from huge pages, and no Python object is made per
document: about half fastText's CPU per MB (BENCHMARKS.md, "Filters"). Probabilities equal fastText's to
float32 rounding (tests/filters/test_fasttext_kernel.py compares them on real documents).

What fastText 0.9 does, and this does the same:

- tokens are runs of bytes other than space, `\\t`, `\\n`, `\\v`, `\\f`, `\\r` and NUL (newlines are
  spaces here: the lines fastText was given had them replaced), and every line ends with the token `</s>`;
  a token equal to `</s>` ends the line early, one starting with the label prefix is not a word;
- a token's hash is 32-bit FNV-1a over its bytes, each byte sign-extended;
- the input rows are those of the in-vocabulary words, in order, then of every word n-gram up to
  `wordNgrams` (out-of-vocabulary words take part in n-grams): row nwords + (combined hash % bucket);
- the hidden vector is the mean of those rows (summed in that order), the output a softmax over labels,
  and the probability reported is exp(log(p + 1e-5)), all in float32.

It reads the models `filters.fasttext_training` writes (softmax loss, word n-grams, no character n-grams,
not quantised); any other kind is refused when loaded, naming what it has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa

from curate.random_reads import fetch, on_huge_pages
from curate.utf8_arrays import as_text_array, utf8_buffers
from filters.model_files import UnsupportedModel

EOS = "</s>"
FETCH_AHEAD = 12
"""N-gram rows requested this many rows before they are added (measured: 8-16 alike, 0 is ~20% slower)."""


@dataclass(frozen=True)
class Vocabulary:
    """A model's words as the compiled scorers look a token up: by its FNV hash in an open-addressing
    table sized to the vocabulary, then by its bytes."""

    table: np.ndarray
    """The word id in each slot, -1 for an empty one."""
    hashes: np.ndarray
    offsets: np.ndarray
    data: np.ndarray
    eos: int

    @classmethod
    def of(cls, words: list[bytes]) -> Vocabulary:
        offsets = np.concatenate([[0], np.cumsum([len(word) for word in words])]).astype(np.int64)
        data = np.frombuffer(b"".join(words), np.uint8)
        hashes = _fnv_hashes(data, offsets)
        table = _vocabulary_table(hashes, max(4, (2 * len(words)).bit_length()))
        return cls(table, hashes, offsets, data, words.index(EOS.encode()))

    def arrays(self) -> tuple:
        """What the kernels take, in their order."""
        return self.table, self.hashes, self.offsets, self.data, self.eos


@dataclass(frozen=True)
class CompiledClassifier:
    """A fastText supervised model's tables, as the compiled scorer reads them."""

    vocabulary: Vocabulary
    label_prefix: np.ndarray
    bucket: int
    word_ngrams: int
    input_rows: np.ndarray
    output_rows: np.ndarray
    positive: int
    """The row of `output_rows` of the positive label."""

    @classmethod
    def of(cls, model, positive_label: str) -> CompiledClassifier:
        """The tables of a loaded `fasttext` model (it can be released afterwards)."""
        refuse_unsupported(model)
        args = model.f.getArgs()
        words = [word.encode("utf-8") for word in model.get_words(on_unicode_error="replace")]
        labels = model.get_labels()
        if positive_label not in labels:
            raise UnsupportedModel(f"the model has no label {positive_label!r} (it has {labels})")
        return cls(
            vocabulary=Vocabulary.of(words),
            label_prefix=np.frombuffer(args.label.encode("utf-8"), np.uint8),
            bucket=int(args.bucket),
            word_ngrams=int(args.wordNgrams),
            input_rows=on_huge_pages(np.asarray(model.get_input_matrix(), dtype=np.float32)),
            output_rows=np.ascontiguousarray(model.get_output_matrix(), dtype=np.float32),
            positive=labels.index(positive_label),
        )

    def probabilities(self, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """P(positive label) of every text (a null is an empty text), as fastText's predict gives it, but
        clipped to 1 (its + 1e-5 can pass it)."""
        data, offsets = utf8_buffers(as_text_array(texts))
        model = (self.label_prefix, self.bucket, self.word_ngrams, self.input_rows, self.output_rows)
        p = _predict(data, offsets, *self.vocabulary.arrays(), *model, self.positive)
        return np.minimum(p, 1.0)


def refuse_unsupported(model) -> None:
    """What the compiled scorer does not read, named, so such a model fails when a stage loads it."""
    args = model.f.getArgs()
    problems = []
    if model.is_quantized():
        problems.append("it is quantised")
    if args.maxn > 0:
        problems.append(f"it has character n-grams (maxn {args.maxn})")
    if args.loss.name != "softmax":
        problems.append(f"its loss is {args.loss.name}")
    if EOS not in model.words:
        problems.append(f"its vocabulary has no {EOS}")
    if problems:
        raise UnsupportedModel(
            f"the compiled fastText scorer reads softmax word n-gram models only, but "
            f"{' and '.join(problems)}; train it with `curate models train-toxicity` / `train-quality`"
        )


@numba.njit(cache=True)
def fnv_hash(data: np.ndarray, start: int = 0, end: int = -1) -> np.uint32:
    """fastText's word hash of data[start:end] (FNV-1a, bytes sign-extended as C++ `int8_t` casts them)."""
    end = len(data) if end < 0 else end
    h = np.uint32(2166136261)
    for i in range(start, end):
        byte = np.uint32(data[i]) if data[i] < 0x80 else np.uint32(0xFFFFFF00 | data[i])
        h = np.uint32((h ^ byte) * np.uint32(16777619))
    return h


@numba.njit(cache=True)
def _fnv_hashes(data, offsets):
    """`fnv_hash` of each data[offsets[k]:offsets[k + 1]]."""
    out = np.empty(len(offsets) - 1, dtype=np.uint32)
    for k in range(len(out)):
        out[k] = fnv_hash(data, offsets[k], offsets[k + 1])
    return out


@numba.njit(cache=True)
def _vocabulary_table(hashes, table_bits):
    table = np.full(1 << table_bits, -1, dtype=np.int32)
    mask = (1 << table_bits) - 1
    for word in range(len(hashes)):
        slot = hashes[word] & mask
        while table[slot] >= 0:
            slot = (slot + 1) & mask
        table[slot] = word
    return table


@numba.njit(cache=True)
def _word_id(data, start, end, h, table, hashes, word_offsets, word_bytes):
    """The id of the word data[start:end] (hash h), -1 when it is not in the vocabulary."""
    mask = len(table) - 1
    slot = h & mask
    while table[slot] >= 0:
        word = table[slot]
        first = word_offsets[word]
        if hashes[word] == h and word_offsets[word + 1] - first == end - start:
            k = 0
            while k < end - start and word_bytes[first + k] == data[start + k]:
                k += 1
            if k == end - start:
                return word
        slot = (slot + 1) & mask
    return -1


@numba.njit(cache=True)
def _is_separator(byte):
    return byte == 32 or byte == 10 or byte == 13 or byte == 9 or byte == 11 or byte == 12 or byte == 0


@numba.njit(cache=True, inline="always")
def next_token(data, i, end):
    """(start, stop) of the first token at or after byte i of a row ending at `end` (start == stop: none)."""
    while i < end and _is_separator(data[i]):
        i += 1
    start = i
    while i < end and not _is_separator(data[i]):
        i += 1
    return start, i


@numba.njit(cache=True)
def longest_row(offsets):
    longest = 0
    for d in range(len(offsets) - 1):
        longest = max(longest, offsets[d + 1] - offsets[d])
    return longest


@numba.njit(cache=True)
def _starts_with(data, start, end, prefix):
    if end - start < len(prefix):
        return False
    k = 0
    while k < len(prefix) and data[start + k] == prefix[k]:
        k += 1
    return k == len(prefix)


@numba.njit(cache=True, inline="always")
def add_row(hidden, input_rows, row):
    """hidden += input_rows[row], element by element (the array form allocates a temporary per call)."""
    for j in range(len(hidden)):
        hidden[j] += input_rows[row, j]


@numba.njit(cache=True)
def _predict(
    data, offsets, table, hashes, word_offsets, word_bytes, eos, label_prefix, bucket, word_ngrams,
    input_rows, output_rows, positive,
):  # fmt: skip
    """See the module docstring; one line (document) at a time, with buffers sized to the longest."""
    dim, n_labels = input_rows.shape[1], output_rows.shape[0]
    flat_rows = input_rows.reshape(-1)
    longest = longest_row(offsets)
    token_hashes = np.empty(longest // 2 + 2, dtype=np.int64)
    ngram_rows = np.empty((longest // 2 + 2) * max(word_ngrams - 1, 1), dtype=np.int64)
    hidden, output = np.zeros(dim, dtype=np.float32), np.zeros(n_labels, dtype=np.float32)
    out = np.empty(len(offsets) - 1, dtype=np.float64)
    for d in range(len(offsets) - 1):
        hidden[:] = 0
        rows, n_hashes = 0, 0
        i, end, word = offsets[d], offsets[d + 1], -1
        while word != eos:
            start, i = next_token(data, i, end)
            h, word = hashes[eos], eos  # the line's end
            if i > start:
                h = fnv_hash(data, start, i)
                word = _word_id(data, start, i, h, table, hashes, word_offsets, word_bytes)
                if word < 0 and _starts_with(data, start, i, label_prefix):
                    continue  # a label, not a word: no row, no n-gram
            if word >= 0:
                add_row(hidden, input_rows, word)
                rows += 1
            token_hashes[n_hashes] = np.int64(np.int32(h))  # fastText keeps hashes as int32
            n_hashes += 1
        n_ngrams = 0
        for a in range(n_hashes):
            h = np.uint64(token_hashes[a])
            for b in range(a + 1, min(n_hashes, a + word_ngrams)):
                h = h * np.uint64(116049371) + np.uint64(token_hashes[b])
                ngram_rows[n_ngrams] = len(hashes) + np.int64(h % np.uint64(bucket))
                n_ngrams += 1
        for r in range(min(n_ngrams, FETCH_AHEAD)):
            fetch(flat_rows, ngram_rows[r] * dim)
        for r in range(n_ngrams):
            if r + FETCH_AHEAD < n_ngrams:
                fetch(flat_rows, ngram_rows[r + FETCH_AHEAD] * dim)
            add_row(hidden, input_rows, ngram_rows[r])
        hidden *= np.float32(1.0 / (rows + n_ngrams))  # rows >= 1: </s> is a word
        out[d] = _softmax_positive(output_rows, hidden, output, positive)
    return out


@numba.njit(cache=True)
def _softmax_positive(output_rows, hidden, output, positive):
    """fastText's softmax output for the positive label, reported as exp(log(p + 1e-5)): the log in double
    precision, stored as float32, then the float32 exp."""
    top = np.float32(-np.inf)
    for label in range(output_rows.shape[0]):
        total = np.float32(0.0)
        for j in range(len(hidden)):
            total += output_rows[label, j] * hidden[j]
        output[label] = total
        top = max(top, total)
    z = np.float32(0.0)
    for label in range(len(output)):
        output[label] = np.exp(output[label] - top)
        z += output[label]
    log_p = np.float32(np.log(np.float64(output[positive] / z) + 1e-5))
    return np.exp(log_p)

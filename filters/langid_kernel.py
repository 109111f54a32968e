"""fastText's lid.176 language identifier, compiled (numba) over a batch's UTF-8 bytes: the top language
and its probability for every text of an Arrow column in one pass.

Why not fastText's own `predict`: it wants one Python string per text, looks every word up in a
30-million-slot table and every character n-gram in a C++ hash map (a cache miss each), and builds a
string per n-gram. Here the words are looked up in a table sized to the vocabulary, the n-grams in a
small table of the ones the compressed model kept, and no object is made per text or per n-gram.

What fastText 0.9 does with lid.176.ftz (quantised input, hierarchical softmax, character n-grams of 2 to
4 characters), and this does the same:

- tokens as for the classifiers (`filters.fasttext_kernel`): runs of bytes other than space, `\\t`,
  `\\n`, `\\v`, `\\f`, `\\r` and NUL, the line ending with `</s>`; a token starting with the label prefix
  is not a word;
- a word's input rows: its own (when in the vocabulary), then those of the n-grams of `<word>` in
  fastText's order (each start character, then lengths minn..maxn), an n-gram being FNV-1a of its bytes
  modulo `bucket`, kept only when the model's prune index holds it (row nwords + its index); `</s>` has
  no n-grams;
- a row is its product-quantiser centroids times its quantised norm; the hidden vector is the mean of
  the rows (summed in that order) in float32;
- the top label is found by fastText's depth-first walk of the Huffman tree (left child first, a branch
  dropped once its log-probability falls below the best leaf's or log(1e-5)), in float32 with its
  double-precision steps; the probability is exp of the leaf's log-probability.

Labels and probabilities equal fastText's (tests/filters/test_langid_kernel.py, on real multilingual text).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa

from curate.random_reads import on_huge_pages
from curate.utf8_arrays import as_text_array, utf8_buffers
from filters.fasttext_kernel import (
    Vocabulary,
    _starts_with,
    _word_id,
    add_row,
    fnv_hash,
    longest_row,
    next_token,
)
from filters.quantised_model_file import KSUB, read_quantised_model

LABEL_PREFIX = "__label__"


@dataclass(frozen=True)
class CompiledLid:
    """A quantised, hierarchical-softmax fastText model with character n-grams (lid.176.ftz)."""

    labels: list[str]
    vocabulary: Vocabulary
    label_prefix: np.ndarray
    minn: int
    maxn: int
    bucket: int
    pruned: np.ndarray
    """Open-addressing table of (n-gram bucket, row index after the words) pairs, -1 for an empty slot."""
    input_rows: np.ndarray
    """float32 (rows, dim): each row's centroids times its norm, as fastText adds them (so the sums are
    its own), computed once: one 64-byte read per row instead of a centroid per sub-quantiser."""
    output_rows: np.ndarray
    tree: np.ndarray
    """int32 (2 * labels - 1, 2): left and right child of each node (-1 for a leaf, a label's node)."""

    @classmethod
    def load(cls, path: str) -> CompiledLid:
        model = read_quantised_model(path)
        return cls(
            labels=[label.decode("utf-8") for label in model.labels],
            vocabulary=Vocabulary.of(model.words),
            label_prefix=np.frombuffer(LABEL_PREFIX.encode(), np.uint8),
            minn=model.minn,
            maxn=model.maxn,
            bucket=model.bucket,
            pruned=_pruned_table(model.kept_buckets, len(model.words)),
            input_rows=on_huge_pages(
                _dequantised(model.codes, model.centroids, model.norms, model.dsub, model.lastdsub)
            ),
            output_rows=model.output_rows,
            tree=_huffman_tree(model.label_counts),
        )

    def predict(self, texts: pa.Array | pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
        """Top label (without its prefix; `und` when fastText would give none) and its probability, of
        every single-line text (a null is an empty text)."""
        data, offsets = utf8_buffers(as_text_array(texts))
        subwords = (self.label_prefix, self.minn, self.maxn, self.bucket, self.pruned)
        best, scores = _predict(
            data, offsets, *self.vocabulary.arrays(), *subwords, self.input_rows, self.output_rows, self.tree
        )
        names = np.array([label.removeprefix(LABEL_PREFIX) for label in self.labels] + ["und"], dtype=object)
        return names[best].tolist(), np.minimum(scores, 1.0)


@numba.njit(cache=True)
def _pruned_table(pairs, nwords):
    """(bucket, row) pairs in an open-addressing table at most half full, keyed by `_slot`."""
    bits = _log2(2 * len(pairs) + 16)
    table = np.full((1 << bits, 2), -1, dtype=np.int32)
    for k in range(len(pairs)):
        slot = _slot(pairs[k, 0], bits)
        while table[slot, 0] >= 0:
            slot = (slot + 1) & ((1 << bits) - 1)
        table[slot, 0], table[slot, 1] = pairs[k, 0], nwords + pairs[k, 1]
    return table


@numba.njit(cache=True)
def _slot(key, bits):
    return np.int64((np.uint32(key) * np.uint32(2654435761)) >> np.uint32(32 - bits)) & ((1 << bits) - 1)


@numba.njit(cache=True)
def _log2(size):
    bits = 0
    while (1 << bits) < size:
        bits += 1
    return bits


@numba.njit(cache=True, inline="always")
def _pruned_row(table, bits, key):
    """The input row of n-gram bucket `key`, -1 when the model dropped it."""
    slot = _slot(key, bits)
    while table[slot, 0] >= 0:
        if table[slot, 0] == key:
            return table[slot, 1]
        slot = (slot + 1) & (len(table) - 1)
    return -1


def _huffman_tree(counts: np.ndarray) -> np.ndarray:
    """fastText's hierarchical-softmax tree over labels sorted by falling count (its `buildTree`)."""
    labels = len(counts)
    tree = np.full((2 * labels - 1, 2), -1, dtype=np.int32)
    weight = np.full(2 * labels - 1, 10**15, dtype=np.int64)
    weight[:labels] = counts
    leaf, node = labels - 1, labels
    for parent in range(labels, 2 * labels - 1):
        pair = []
        for _ in range(2):
            if leaf >= 0 and weight[leaf] < weight[node]:
                pair.append(leaf)
                leaf -= 1
            else:
                pair.append(node)
                node += 1
        tree[parent] = pair
        weight[parent] = weight[pair[0]] + weight[pair[1]]
    return tree


@numba.njit(cache=True)
def _dequantised(codes, centroids, norms, dsub, lastdsub):
    """Every input row: per sub-quantiser its centroid, each value times the row's norm in float32
    (fastText's addcode computes `alpha * c[n]` so, then adds it)."""
    rows, nsubq = codes.shape
    out = np.zeros((rows, (nsubq - 1) * dsub + lastdsub), dtype=np.float32)
    for row in range(rows):
        for m in range(nsubq):
            code = np.int64(codes[row, m])
            if m == nsubq - 1:
                base, width = m * KSUB * dsub + code * lastdsub, lastdsub
            else:
                base, width = (m * KSUB + code) * dsub, dsub
            for n in range(width):
                out[row, m * dsub + n] = norms[row] * centroids[base + n]
    return out


@numba.njit(cache=True)
def _predict(
    data, offsets, table, hashes, word_offsets, word_bytes, eos, label_prefix, minn, maxn, bucket, pruned,
    input_rows, output_rows, tree,
):  # fmt: skip
    """See the module docstring; per text, the index of its top label (len(labels): none) and its
    probability."""
    dim, n_labels = output_rows.shape[1], output_rows.shape[0]
    longest = longest_row(offsets)
    word = np.empty(longest + 2, dtype=np.uint8)
    bits = _log2(len(pruned))
    hidden = np.zeros(dim, dtype=np.float32)
    stack_nodes = np.empty(2 * n_labels, dtype=np.int64)
    stack_scores = np.empty(2 * n_labels, dtype=np.float32)
    best = np.empty(len(offsets) - 1, dtype=np.int64)
    probabilities = np.empty(len(offsets) - 1, dtype=np.float64)
    for d in range(len(offsets) - 1):
        hidden[:] = 0
        rows = 0
        i, end, wid = offsets[d], offsets[d + 1], -1
        while wid != eos:
            start, i = next_token(data, i, end)
            if i == start:
                wid = eos  # the line's end
            elif _starts_with(data, start, i, label_prefix):
                continue  # a label, not a word
            else:
                wid = _word_id(
                    data, start, i, fnv_hash(data, start, i), table, hashes, word_offsets, word_bytes
                )
            if wid >= 0:
                add_row(hidden, input_rows, wid)
                rows += 1
            if wid != eos:
                word[0] = 60  # "<"
                word[1 : i - start + 1] = data[start:i]
                word[i - start + 1] = 62  # ">"
                rows += _add_subwords(
                    hidden, word, i - start + 2, minn, maxn, bucket, pruned, bits, input_rows
                )
        hidden *= np.float32(1.0 / rows)
        best[d], probabilities[d] = _top_label(hidden, output_rows, tree, stack_nodes, stack_scores)
    return best, probabilities


@numba.njit(cache=True)
def _add_subwords(hidden, word, length, minn, maxn, bucket, pruned, bits, input_rows):
    """Add the rows of the kept n-grams of word[:length] (`<token>`), in fastText's order; how many."""
    added = 0
    for i in range(length):
        if (word[i] & 0xC0) == 0x80:
            continue
        h = np.uint32(2166136261)
        j, n = i, 1
        while j < length and n <= maxn:
            h = _fnv_step(h, word[j])
            j += 1
            while j < length and (word[j] & 0xC0) == 0x80:
                h = _fnv_step(h, word[j])
                j += 1
            if n >= minn and not (n == 1 and (i == 0 or j == length)):
                row = _pruned_row(pruned, bits, np.int64(h % np.uint32(bucket)))
                if row >= 0:
                    add_row(hidden, input_rows, row)
                    added += 1
            n += 1
    return added


@numba.njit(cache=True, inline="always")
def _fnv_step(h, byte):
    value = np.uint32(byte) if byte < 0x80 else np.uint32(0xFFFFFF00 | byte)
    return np.uint32((h ^ value) * np.uint32(16777619))


@numba.njit(cache=True)
def _top_label(hidden, output_rows, tree, stack_nodes, stack_scores):
    """fastText's `dfs` for k = 1 and threshold 0, without recursion: (leaf, exp of its score)."""
    n_labels = output_rows.shape[0]
    floor = np.float32(np.log(0.0 + 1e-5))
    best_node, best_score = n_labels, np.float32(0.0)
    top = 0
    stack_nodes[0], stack_scores[0] = 2 * n_labels - 2, np.float32(0.0)
    while top >= 0:
        node, score = stack_nodes[top], stack_scores[top]
        top -= 1
        if score < floor or (best_node < n_labels and score < best_score):
            continue
        if tree[node, 0] == -1 and tree[node, 1] == -1:
            best_node, best_score = node, score  # a leaf reached is at least the best (else cut above)
            continue
        f = np.float32(0.0)
        for j in range(len(hidden)):
            f += output_rows[node - n_labels, j] * hidden[j]
        f = np.float32(1.0 / np.float64(np.float32(1.0) + np.exp(-f)))
        right = score + np.float32(np.log(np.float64(f) + 1e-5))
        left = score + np.float32(np.log(np.float64(np.float32(1.0 - np.float64(f))) + 1e-5))
        top += 1
        stack_nodes[top], stack_scores[top] = tree[node, 1], right
        top += 1
        stack_nodes[top], stack_scores[top] = tree[node, 0], left
    if best_node == n_labels:
        return best_node, 0.0
    return best_node, np.float64(np.exp(best_score))

"""Whether a model file is whole and of a format curate's compiled scorers read, from its header and its
last bytes: cheap enough for the driver to check every model a config names before a worker starts.

Why: neither library checks a copy cut short. fastText, given a model cut in its dictionary, loops for
ever growing one string; cut later, it leaves the missing rows zero and scores every text the same. A
KenLM binary cut short would be scored from whatever lies past its end.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

from curate.errors import ConfigError

MAGIC = b"mmap lm http://kheafield.com/code format version 5\n\0"
PROBING = 0
SANITY_BYTES = 88
"""KenLM's `Sanity` block: the magic (padded to 56 bytes), then 0.0, 1.0, -0.5, 1, 2**32-1, 1."""
PARAMETER_BYTES = 20
"""`FixedWidthParameters`: order (u8, padded), probing multiplier (f32), model type (i32), has
vocabulary (u8, padded), search version (u32)."""
VOCAB_HEADER_BYTES = 8
VOCAB_ENTRY, MIDDLE_ENTRY, LONGEST_ENTRY, UNIGRAM_ENTRY = 12, 16, 12, 8
"""Bytes per entry: (u64 key, u32 id) packed; (u64 key, f32 prob, f32 backoff); (u64 key, f32 prob)
packed; (f32 prob, f32 backoff)."""


class UnsupportedLm(ConfigError):
    """A KenLM file this reader does not read."""


class UnsupportedModel(ConfigError):
    """A fastText model this scorer does not read."""


@dataclass(frozen=True)
class Layout:
    """Where a probing model's tables lie in its file, from its header."""

    counts: tuple[int, ...]
    """n-grams of each order."""
    multiplier: float
    header: int
    sizes: list[int]
    """Bytes of each table: vocabulary, unigrams, middle orders..., longest."""
    end: int


def kenlm_layout(path: str) -> Layout:
    """The layout of a whole probing model file, or an error naming what is wrong. Why the checks: a
    cut copy read as it is would score from whatever lies past its end; a file with a vocabulary must
    hold it right after the tables, starting with `<unk>`."""
    with open(path, "rb") as handle:
        head = handle.read(SANITY_BYTES + PARAMETER_BYTES)
        order, multiplier, has_vocabulary = _parameters(head, path)
        raw_counts = handle.read(8 * order)
        if len(raw_counts) < 8 * order:
            raise UnsupportedLm(f"{path} is shorter than its header says (a cut copy?): copy it again")
        counts = struct.unpack(f"<{order}Q", raw_counts)
        header = _align8(SANITY_BYTES + PARAMETER_BYTES + 8 * order)
        sizes = [VOCAB_HEADER_BYTES + VOCAB_ENTRY * table_buckets(counts[0], multiplier)]
        sizes.append(UNIGRAM_ENTRY * (counts[0] + 1))
        sizes += [MIDDLE_ENTRY * table_buckets(count, multiplier) for count in counts[1:-1]]
        sizes.append(LONGEST_ENTRY * table_buckets(counts[-1], multiplier))
        end = header + sum(sizes)
        if os.path.getsize(path) < end + (6 if has_vocabulary else 0):
            raise UnsupportedLm(f"{path} is shorter than its header says (a cut copy?): copy it again")
        handle.seek(end)
        if has_vocabulary and handle.read(6) != b"<unk>\0":
            raise UnsupportedLm(f"{path}: the tables do not end where KenLM's format 5 puts them")
    return Layout(counts, multiplier, header, sizes, end)


def _parameters(head: bytes, path: str) -> tuple[int, float, bool]:
    if not head.startswith(MAGIC):
        raise UnsupportedLm(f"{path} is not a KenLM binary of format 5 (an ARPA file? run build_binary)")
    order, multiplier, model_type, has_vocabulary = struct.unpack_from("<B3xfiB", head, SANITY_BYTES)
    if model_type != PROBING:
        kinds = ["probing", "rest probing", "trie", "quant trie", "array trie", "quant array trie"]
        kind = kinds[model_type] if 0 <= model_type < len(kinds) else f"type-{model_type}"
        raise UnsupportedLm(
            f"{path} is a KenLM {kind} model; curate reads probing models (build_binary's default; "
            "`curate models train-lm` writes one)"
        )
    return order, multiplier, bool(has_vocabulary)


def _align8(size: int) -> int:
    return (size + 7) // 8 * 8


def table_buckets(entries: int, multiplier: float) -> int:
    """KenLM's table size: max(entries + 1, entries * multiplier computed in float32)."""
    return max(entries + 1, int(np.float32(multiplier) * np.float32(entries)))


FASTTEXT_MAGIC, FASTTEXT_VERSION = 793712314, 12
HEAD = struct.Struct("<ii12id iiiqq")
"""magic, version, the 13 training arguments (dim first), then the dictionary's size, words and labels."""


def check_fasttext_file(path: str) -> None:
    """Why: fastText reads a cut copy of a model without a word: cut in its dictionary, it loops for
    ever growing a string; cut later, its missing rows are zeros and every text scores the same. A
    whole supervised model ends with its output matrix: a `false` quantised-output byte, the shape
    (labels, dim) as two int64, then the float32 rows; the header gives dim and the labels."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(HEAD.size)
        fields = HEAD.unpack(head) if len(head) == HEAD.size else None
        if fields is None or fields[:2] != (FASTTEXT_MAGIC, FASTTEXT_VERSION):
            raise UnsupportedModel(f"{path} is not a whole fastText model of format {FASTTEXT_VERSION}")
        dim, labels = fields[2], fields[17]
        trailer = 17 + 4 * labels * dim
        handle.seek(max(size - trailer, 0))
        if (
            labels < 1
            or size < HEAD.size + trailer
            or handle.read(17) != b"\0" + struct.pack("<qq", labels, dim)
        ):
            raise UnsupportedModel(
                f"{path} does not end with its output matrix ({size:,} bytes: a cut copy, or a quantised "
                "model): copy it again or retrain it (`curate models train-toxicity` / `train-quality`)"
            )


FILE_CHECKS = {"fasttext": check_fasttext_file, "kenlm": kenlm_layout}
"""Per model kind (its part before `-`), the check that its model file is whole."""


def check_model_file(kind: str, path: str) -> None:
    check = FILE_CHECKS.get(kind.split("-")[0])
    if check is not None:
        check(path)

"""The compiled KenLM reader (filters.kenlm_query) against the kenlm module, on real text.

Tolerance: none. Both add the same float32 values in the same order, so every line's log10 probability
is bit-identical, for models of order 2, 3 and 5, pruned or not, read into memory or memory-mapped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curate.textsources import wikipedia_pages
from filters import kenlm_query
from filters.kenlm_lm import normalize_for_lm, scoring_lines
from filters.kenlm_query import ProbingLm
from filters.kenlm_training import train_kenlm, write_corpus
from filters.model_files import UnsupportedLm
from tests.filters.web_docs import web_docs

CRAFTED = [
    "a",
    "<s>",
    "</s> after the end marker",
    "<unk> unknownwordzz qqqqq",
    "the the the the the the the the the the of of of and and and",
    "tabs\tand\x0bvertical\x0cfeeds\rsplit words too",
    "caf\u00e9 \u00fcber na\u00efve \u65e5\u672c\u8a9e",
    " ".join(["word"] * 3000),
]
SHORT = ["x", "y z", "!"] * 400
"""One-character words on short lines: the most words per byte (the word-id buffer's worst case)."""


@pytest.fixture(scope="module")
def texts(shared: Path) -> list[str]:
    return [doc.text for doc in web_docs(shared / "web")] + [t for _, t in islice(wikipedia_pages(), 300)]


@pytest.fixture(scope="module")
def lines(texts: list[str]) -> list[str]:
    """Held-out lines (every other text) as the stages score them, plus edge cases."""
    held = scoring_lines(normalize_for_lm(pa.array(texts[1::2], pa.large_string())))
    data, offsets = held.data, held.offsets
    real = [bytes(data[offsets[i] : offsets[i + 1]]).decode() for i in range(len(offsets) - 1)]
    return real + CRAFTED


def train(kenlm_tools, texts: list[str], directory: Path, order: int, prune: list[int] | None = None) -> Path:
    directory.mkdir()
    write_corpus(texts[::2], directory / "corpus.txt")
    train_kenlm(directory / "corpus.txt", directory, order=order, prune=prune, log=lambda _: None)
    return directory / "model.bin"


def as_buffers(lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [line.encode("utf-8") for line in lines]
    offsets = np.concatenate([[0], np.cumsum([len(line) for line in encoded])]).astype(np.int64)
    return np.frombuffer(b"".join(encoded), np.uint8), offsets


@pytest.mark.parametrize(("order", "prune"), [(2, None), (3, None), (5, [0, 0, 1])])
def test_scores_are_kenlms_bit_for_bit(
    kenlm_tools, texts, lines, tmp_path: Path, order, prune, monkeypatch
) -> None:
    import kenlm

    path = str(train(kenlm_tools, texts, tmp_path / "lm", order, prune))
    expected = np.array([kenlm.Model(path).score(line, bos=True, eos=True) for line in lines])
    data, offsets = as_buffers(lines)
    assert np.array_equal(ProbingLm.load(path).line_scores(data, offsets), expected)
    assert ProbingLm.load(path).score(lines[0]) == expected[0]
    short_expected = [kenlm.Model(path).score(line) for line in SHORT]
    assert ProbingLm.load(path).line_scores(*as_buffers(SHORT)).tolist() == short_expected
    monkeypatch.setattr(kenlm_query, "READ_INTO_MEMORY_MAX_BYTES", 0)  # a model over the cap is mapped
    mapped = ProbingLm.load(path)
    assert isinstance(mapped.words.base, np.memmap) or isinstance(mapped.words, np.memmap)
    assert np.array_equal(mapped.line_scores(data, offsets), expected)


def test_lines_are_read_in_groups_without_changing_a_score(
    kenlm_tools, texts, lines, tmp_path, monkeypatch
) -> None:
    path = str(train(kenlm_tools, texts, tmp_path / "lm", 3))
    data, offsets = as_buffers(lines)
    whole = ProbingLm.load(path).line_scores(data, offsets)
    monkeypatch.setattr(kenlm_query, "CHUNK_BYTES", 200)  # groups of a few lines, and lines alone
    kenlm_query._score_lines.recompile()
    try:
        assert np.array_equal(ProbingLm.load(path).line_scores(data, offsets), whole)
    finally:
        monkeypatch.undo()
        kenlm_query._score_lines.recompile()


TINY_ARPA = """\\data\\
ngram 1=4
ngram 2=1

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.3
-1.0\t</s>\t0
-0.5\ta\t-0.2

\\2-grams:
-0.3\t<s> a

\\end\\
"""


def test_files_it_cannot_read_are_refused_by_name(kenlm_tools, tmp_path: Path) -> None:
    arpa = tmp_path / "model.arpa"
    arpa.write_text(TINY_ARPA)
    with pytest.raises(UnsupportedLm, match="not a KenLM binary of format 5"):
        ProbingLm.load(str(arpa))
    for structure in ("probing", "trie"):
        binary = str(tmp_path / f"{structure}.bin")
        build = [str(kenlm_tools["build_binary"]), "-s", structure, str(arpa), binary]
        subprocess.run(build, check=True, capture_output=True)
    with pytest.raises(UnsupportedLm, match="is a KenLM trie model; curate reads probing models"):
        ProbingLm.load(str(tmp_path / "trie.bin"))
    whole = (tmp_path / "probing.bin").read_bytes()
    assert ProbingLm.load(str(tmp_path / "probing.bin")).score("a") < 0
    (tmp_path / "cut.bin").write_bytes(whole[: len(whole) - 20])
    with pytest.raises(UnsupportedLm, match="shorter than its header says"):
        ProbingLm.load(str(tmp_path / "cut.bin"))


BOUNDS_CHECK = """
import sys, numpy as np, kenlm
from filters.kenlm_query import ProbingLm
lines = ["", " ", "a", "x" * 100_000, "a " * 50_000, " a" * 50_000, *["x", "y z", "!"] * 500]
encoded = [line.encode() for line in lines]
offsets = np.concatenate([[0], np.cumsum([len(line) for line in encoded])]).astype(np.int64)
got = ProbingLm.load(sys.argv[1]).line_scores(np.frombuffer(b"".join(encoded), np.uint8), offsets)
assert got.tolist() == [kenlm.Model(sys.argv[1]).score(line) for line in lines]
"""


def test_the_kernel_stays_inside_its_buffers_on_worst_case_lines(kenlm_tools, texts, tmp_path: Path) -> None:
    """numba does not check indices, so a write past a buffer would corrupt memory silently: here the
    kernel runs compiled with NUMBA_BOUNDSCHECK=1 (a fresh process and cache), where it would raise."""
    path = train(kenlm_tools, texts[:60], tmp_path / "lm", 3)
    env = os.environ | {"NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    done = subprocess.run(
        [sys.executable, "-c", BOUNDS_CHECK, str(path)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]

"""The compiled lid.176 (filters.langid_kernel) against fastText's own predict, on real text.

Tolerance: none. The top label and its probability are fastText's bit for bit: the same float32 sums in
the same order, and the walk of the label tree with the same float and double steps.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from filters.langid import lid_model_path, one_line
from filters.langid_kernel import CompiledLid
from filters.model_files import UnsupportedModel
from tests.filters.web_docs import web_docs

CRAFTED = [
    "",
    " ",
    "__label__en",
    "__label__fr bonjour tout le monde",
    "</s> the line ends at a literal end marker",
    "a</s>b c",
    "tab\tnul\x00vtab\x0bff\x0ccr\rend",
    "x" * 20_000,
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "caf\u00e9 \u00fcber na\u00efve \U0001f600 \u0928\u092e\u0938\u094d\u0924\u0947",
    "a b c d e f g",
]


@cache
def fasttext_model():
    import fasttext

    return fasttext.load_model(str(lid_model_path()))


def fasttext_top(lines: list[str]) -> tuple[list[str], np.ndarray]:
    labels, probabilities = fasttext_model().predict(lines, k=1)
    langs = [label[0].removeprefix("__label__") if label else "und" for label in labels]
    return langs, np.array([float(p[0]) if len(p) else 0.0 for p in probabilities])


def assert_same_as_fasttext(lid: CompiledLid, lines: list[str]) -> None:
    expected_langs, expected = fasttext_top(lines)
    langs, got = lid.predict(pa.array(lines, pa.large_string()))
    assert langs == expected_langs
    assert np.array_equal(got, np.minimum(expected, 1.0))


@pytest.fixture(scope="module")
def lid() -> CompiledLid:
    return CompiledLid.load(str(lid_model_path()))


def test_web_documents_whole_and_sampled(lid: CompiledLid, shared: Path) -> None:
    texts = [doc.text for doc in web_docs(shared / "web")]
    if not texts:
        pytest.skip("../shared/data/web has no documents")
    lines = one_line(pa.array(texts, pa.large_string()))
    assert_same_as_fasttext(lid, lines)
    assert_same_as_fasttext(lid, [line[:500] for line in lines])


def test_every_udhr_language(lid: CompiledLid, shared: Path) -> None:
    archive = shared / "langid" / "udhr2.zip"
    if not archive.is_file():
        pytest.skip("../shared/data/langid/udhr2.zip is absent")
    with zipfile.ZipFile(archive) as files:
        texts = [
            files.read(name).decode("utf-8", "replace") for name in files.namelist() if name.endswith(".txt")
        ]
    lines = one_line(pa.array(texts, pa.large_string()))
    assert len(lines) > 300
    assert_same_as_fasttext(lid, [line[:3000] for line in lines] + [line[:60] for line in lines])


def test_edge_cases_and_arrow_layouts(lid: CompiledLid) -> None:
    assert_same_as_fasttext(lid, CRAFTED)
    langs, scores = lid.predict(pa.array(CRAFTED, pa.large_string()))
    for layout in (
        pa.array(CRAFTED, pa.string()),
        pa.chunked_array([CRAFTED[:4], CRAFTED[4:]], pa.large_string()),
        pa.array(["skip"] + CRAFTED, pa.large_string()).slice(1),
    ):
        again_langs, again = lid.predict(layout)
        assert again_langs == langs and np.array_equal(again, scores)
    null_langs, null_scores = lid.predict(pa.array([None, ""], pa.large_string()))
    assert null_langs[0] == null_langs[1] and null_scores[0] == null_scores[1]


def test_a_cut_model_is_refused_by_name(tmp_path: Path) -> None:
    whole = lid_model_path().read_bytes()
    for length in (50, 200_000, len(whole) // 2, len(whole) - 10):
        (tmp_path / "cut.ftz").write_bytes(whole[:length])
        with pytest.raises(UnsupportedModel, match="ends early|not a whole"):
            CompiledLid.load(str(tmp_path / "cut.ftz"))


BOUNDS_CHECK = """
import numpy as np, pyarrow as pa
from filters.langid import lid_model_path
from filters.langid_kernel import CompiledLid
texts = ["", " ", "a", "x" * 100_000, "a " * 50_000, "\\u00e9" * 30_000, "__label__en", "</s>"]
texts += ["\\U0001f600 b", "y z", "!"] * 500
langs, scores = CompiledLid.load(str(lid_model_path())).predict(pa.array(texts, pa.large_string()))
assert len(langs) == len(texts) and np.all((scores >= 0) & (scores <= 1))
"""


def test_the_kernel_stays_inside_its_buffers_on_worst_case_text(tmp_path: Path) -> None:
    """numba does not check indices: here the kernel runs compiled with NUMBA_BOUNDSCHECK=1 (a fresh
    process and cache), where a read or write past a buffer raises."""
    env = os.environ | {"NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", BOUNDS_CHECK], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

"""The compiled fastText scorer (filters.fasttext_kernel) against fastText's own predict, on real text.

Tolerance: 1e-7 absolute on P(label 1). The two compute the same float32 sums in the same order; what may
differ is the last bit of the softmax's exp (libm's against LLVM's), so nearly every score is bit-identical
(asserted: >= 99% of them) and a drop threshold sees the same side.
"""

from __future__ import annotations

import os
import subprocess
import sys
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from curate.textsources import wikipedia_pages
from filters import corpora
from filters.fasttext_kernel import CompiledClassifier, fnv_hash
from filters.fasttext_scoring import NEGATIVE, POSITIVE, classifier_lines, load_classifier, score_texts
from filters.fasttext_training import train_classifier
from filters.model_files import UnsupportedModel
from tests.filters.web_docs import web_docs

TOLERANCE = 1e-7
MIN_IDENTICAL = 0.99
CRAFTED = [
    "",
    "   ",
    "word",
    "__label__1 looks like a label __label__0",
    "a </s> b c: the line ends at a literal </s>",
    "tab\tnul\x00vtab\x0bff\x0ccr\rend",
    "caf\u00e9 \u00fcber na\u00efve \u65e5\u672c\u8a9e \U0001f600 emoji",  # bytes >= 0x80: hashes sign-extend
    "unseenword anotherunseenword",
    "the the the the the the the the",
]


@pytest.fixture(scope="module")
def texts(shared: Path) -> list[str]:
    """Web pages and Wikipedia pages: what the classifiers score in a chain."""
    return [doc.text for doc in web_docs(shared / "web")] + [t for _, t in islice(wikipedia_pages(), 200)]


def fasttext_probability(model, lines: list[str]) -> np.ndarray:
    """P(label 1) from fastText's predict, as the stages read it before the compiled scorer."""
    labels, probs = model.predict(lines, k=2)
    out = []
    for names, values in zip(labels, probs, strict=True):
        scores = dict(zip(names, values, strict=True))
        out.append(scores[POSITIVE] if POSITIVE in scores else 1.0 - scores.get(NEGATIVE, 0.5))
    return np.clip(np.array(out, dtype=np.float64), 0.0, 1.0)


def train(shared: Path, path: Path, **params: Any):
    """A small real toxicity classifier (Davidson tweets), trained as the recipes train theirs, in seconds."""
    import fasttext

    tweets = list(islice(corpora.davidson_examples(shared / "toxicity"), 4000))
    if not tweets:
        pytest.skip("../shared/data/toxicity has no Davidson tweets to train on")
    examples = [(text, label, str(index)) for index, (text, label) in enumerate(tweets)]
    train_classifier(examples, path, 20_000, {"epoch": 3, "dim": 16, "bucket": 50_000} | params)
    return fasttext.load_model(str(path))


@pytest.mark.parametrize("word_ngrams", [1, 2, 3])
def test_compiled_scores_equal_fasttext_predict(
    shared: Path, tmp_path: Path, texts: list[str], word_ngrams: int
) -> None:
    model = train(shared, tmp_path / "model.bin", wordNgrams=word_ngrams)
    compiled = CompiledClassifier.of(model, POSITIVE)
    lines = classifier_lines(texts, 20_000) + CRAFTED
    raw = [line.replace("\n", " ") for line in lines]  # fastText's predict refuses newlines
    expected = fasttext_probability(model, raw)
    got = compiled.probabilities(pa.array(lines, pa.large_string()))
    assert np.abs(got - expected).max() <= TOLERANCE
    assert np.mean(got == expected) >= MIN_IDENTICAL
    assert len(set(np.round(got, 3))) > 20  # a model that scores, not a constant
    sliced = pa.chunked_array([pa.array(lines[:7]), pa.array(lines[7:])]).cast(pa.string())
    assert np.array_equal(compiled.probabilities(sliced), got)


def test_the_stages_scores_equal_fasttext_on_cut_documents(shared: Path, tmp_path: Path, texts) -> None:
    path = tmp_path / "model.bin"
    long_texts = [*texts, " ".join(texts[:40]), None]  # one longer than the 20,000-character cap
    expected = fasttext_probability(train(shared, path), classifier_lines(long_texts, 20_000))
    column = pa.array(long_texts, pa.large_string())
    classifier = load_classifier(str(path))
    for given in (column, long_texts):  # a batch's column, and a list (training and evaluation data)
        assert np.abs(score_texts(classifier, given, 20_000) - expected).max() <= TOLERANCE


@pytest.fixture(scope="module")
def quick_models(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`plain.bin` (a model the scorer reads) and `subwords-hs.bin` (one it refuses), trained in a second
    on Davidson tweets, each in a fresh process (see fasttext_training._run_child)."""
    tweets = list(islice(corpora.davidson_examples(shared / "toxicity"), 1000))
    if not tweets:
        pytest.skip("../shared/data/toxicity has no Davidson tweets to train on")
    folder = tmp_path_factory.mktemp("quick-models")
    lines = classifier_lines([text for text, _ in tweets], 20_000)
    rows = [f"__label__{label} {line}\n" for line, (_, label) in zip(lines, tweets, strict=True) if line]
    (folder / "train.txt").write_text("".join(rows))
    fresh_zeros = os.environ | {"MALLOC_MMAP_THRESHOLD_": str(1 << 16)}
    for name, params in {"subwords-hs": "minn=2, maxn=4, loss='hs'", "plain": ""}.items():
        train = f"train_supervised(input='train.txt', epoch=1, dim=8, bucket=999, thread=1, {params})"
        code = f"import fasttext; fasttext.{train}.save_model('{name}.bin')"
        subprocess.run(
            [sys.executable, "-c", code], cwd=folder, env=fresh_zeros, check=True, capture_output=True
        )
    return folder


def test_models_it_cannot_read_are_refused_by_name(quick_models: Path) -> None:
    import fasttext

    with pytest.raises(UnsupportedModel, match=r"character n-grams \(maxn 4\) and its loss is hs"):
        CompiledClassifier.of(fasttext.load_model(str(quick_models / "subwords-hs.bin")), POSITIVE)
    with pytest.raises(UnsupportedModel, match="no label '__label__toxic'"):
        CompiledClassifier.of(fasttext.load_model(str(quick_models / "plain.bin")), "__label__toxic")



def test_a_cut_model_file_is_refused_before_fasttext_reads_it(quick_models: Path, tmp_path: Path) -> None:
    """fastText itself would loop for ever on a file cut in its dictionary, or score from zero rows."""
    whole = (quick_models / "plain.bin").read_bytes()
    cut = tmp_path / "cut.bin"
    for length in (0, 50, 200, len(whole) // 2, len(whole) - 40, len(whole) - 1):
        cut.write_bytes(whole[:length])
        with pytest.raises(UnsupportedModel, match="not a whole fastText model|does not end with its output"):
            load_classifier(str(cut))
    cut.write_bytes(whole)
    assert load_classifier(str(cut)).probabilities(pa.array(["a b"])).shape == (1,)


BOUNDS_CHECK = """
import sys, numpy as np, pyarrow as pa, fasttext
from filters.fasttext_kernel import CompiledClassifier
texts = ["", " ", "a", "a b", "x" * 100_000, "a " * 50_000, " a" * 50_000, "__label__1 a", "\\xe9 \\u65e5"]
texts += ["y z", "!"] * 500
model = fasttext.load_model(sys.argv[1])
got = CompiledClassifier.of(model, "__label__1").probabilities(pa.array(texts, pa.large_string()))
labels, probs = model.predict(texts, k=2)
expected = [dict(zip(l, p)).get("__label__1", 0.0) for l, p in zip(labels, probs)]
assert np.abs(got - np.minimum(expected, 1.0)).max() <= 1e-7
"""


def test_the_kernel_stays_inside_its_buffers_on_worst_case_text(quick_models: Path, tmp_path: Path) -> None:
    """numba does not check indices, so a write past a buffer would corrupt memory silently: here the
    kernel runs compiled with NUMBA_BOUNDSCHECK=1 (a fresh process and cache), where it would raise."""
    env = os.environ | {"NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", BOUNDS_CHECK, str(quick_models / "plain.bin")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_word_hash_is_fasttexts_fnv_with_sign_extended_bytes() -> None:
    def reference(word: str) -> int:
        h = 2166136261
        for byte in word.encode("utf-8"):
            h = ((h ^ (byte if byte < 0x80 else byte | 0xFFFFFF00)) * 16777619) % 2**32
        return h

    for word in ["", "a", "the", "</s>", "caf\u00e9", "\U0001f600"]:
        assert int(fnv_hash(np.frombuffer(word.encode("utf-8"), np.uint8))) == reference(word)

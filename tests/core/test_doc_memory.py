"""A huge document costs each stage a small multiple of its size, and the same results as a small one.

Long texts are processed in windows (tokens, shingles, units, normalisation, lower-casing), so the
promises are two: the windowed results are exactly those of the whole-text computation, checked on a
real 2.5 M-character document against the same code with windowing switched off; and one real 50 M-
character document goes through normalize, tag, heuristics and the dedup sketch in a fresh process whose
peak RSS stays under a bound the whole-text code exceeded several times over (3.9 GB, heuristics alone
3.3 GB more than the document).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import xxhash

from curate import textwindows
from curate.dedup import paragraphs
from curate.dedup.minhash import MinHasher
from curate.dedup.shingles import shingle_hashes
from curate.dedup.sketch import exact_key
from curate.stages import normalize
from curate.utf8_arrays import word_counts
from filters.rules import RuleEngine, badwords, ngrams, words

REPO = Path(__file__).resolve().parents[2]
PEAK_BOUND_MB = 1500
BIG_CHARS = 50_000_000


def books_text(shared: Path, chars: int) -> str:
    """`chars` characters of real prose: the shared books joined by blank lines, cycled if needed."""
    paths = sorted((shared / "domains" / "books").glob("*.txt"))
    if not paths:
        pytest.skip("../shared/data/domains/books is absent")
    parts, size = [], 0
    while size < chars:
        for path in paths:
            parts.append(path.read_text(encoding="utf-8", errors="replace").strip())
            size += len(parts[-1]) + 2
            if size >= chars:
                break
    return "\n\n".join(parts)[:chars]


@pytest.fixture(scope="module")
def long_text(shared: Path) -> str:
    return books_text(shared, 2_500_000)


def whole(text: str, size: int = 0) -> Iterator[tuple[int, int]]:
    """whitespace_windows with windowing switched off: the whole text is one window."""
    yield 0, len(text)


def test_heuristics_give_the_same_report_with_and_without_windows(long_text, monkeypatch):
    texts = [long_text, long_text[:1_500_000].upper(), "Short text. " * 40]
    # small windows, parts and blocks, so the 2.5 M characters cross hundreds of their edges
    def windowing(monkeypatch, windows, part_keys: int, block: int) -> None:
        for module in (words, badwords):
            monkeypatch.setattr(module, "whitespace_windows", windows)
        monkeypatch.setattr(ngrams, "_PART_KEYS", part_keys)
        monkeypatch.setattr(badwords, "_BLOCK", block)

    windowing(monkeypatch, functools.partial(textwindows.whitespace_windows, size=50_000), 1 << 14, 1 << 12)
    windowed = RuleEngine().evaluate(texts)
    windowing(monkeypatch, whole, 1 << 24, 1 << 62)  # one part per document: it holds < 16 M n-grams
    reference = RuleEngine().evaluate(texts)
    assert windowed.codes == reference.codes
    assert windowed.flags() == reference.flags()
    np.testing.assert_array_equal(windowed.failed, reference.failed)
    for name, values in reference.signals.items():
        np.testing.assert_array_equal(windowed.signals[name], values, err_msg=name)
    assert "gopher_quality:word_count" in windowed.flags()[0]  # over 100,000 words


def test_normalize_gives_the_same_text_with_and_without_windows(long_text):
    messy = (
        unicodedata.normalize("NFD", long_text[:3_000_000]).replace("\n", "\r\n").replace(". ", ".\u00a0  ")
    )
    texts = pa.array([long_text, messy, "  short\n\n\n\nx  ", None], pa.large_string())
    for params in (normalize.NormalizeParams(), normalize.NormalizeParams(form="NFKC", max_blank_lines=0)):
        windowed = normalize.normalize_text(texts, params)
        assert windowed.equals(normalize._normalize_rows(texts, params))


def test_dedup_keys_and_units_are_the_same_with_and_without_windows(long_text):
    hasher = MinHasher()
    texts = [long_text, "Short text with a few words in it."]
    reference = hasher.signatures_from_shingles(shingle_hashes(texts))  # one sub-batch per document
    np.testing.assert_array_equal(hasher.signatures(texts), reference)
    assert exact_key(long_text) == xxhash.xxh3_128_digest(" ".join(long_text.lower().split()).encode())
    assert word_counts([long_text]).tolist() == [len(long_text.split())]
    array = pa.array([long_text], pa.large_string())
    for unit in ("line", "paragraph"):
        windowed = paragraphs.units(array, unit)
        reference = paragraphs._units_of_slice(array, paragraphs.dedup_form(array), unit)
        for name in paragraphs._FIELDS:
            np.testing.assert_array_equal(getattr(windowed, name), getattr(reference, name), err_msg=name)


CHILD = """
import json, resource, sys
import pyarrow as pa
from curate.dedup.settings import DedupConfig
from curate.dedup.sketch import hasher_for, sketch_batch
from curate.schema import BASE_SCHEMA, conform
from curate.stages.registry import get_stage
from tests.core.test_doc_memory import books_text
from pathlib import Path

stages = []
for name, params in (("normalize", {}), ("tag", {}), ("heuristics", {"mode": "annotate"})):
    cls = get_stage(name)
    stages.append(cls(cls.Params(**params)))
    stages[-1].setup()
hasher = hasher_for(DedupConfig())
text = books_text(Path(sys.argv[1]), int(sys.argv[2]))
batch = conform(pa.table({"id": ["big"], "text": pa.array([text], pa.large_string()), "source": ["big"],
                          "url": ["https://example.org/big"]}), BASE_SCHEMA)
del text
for stage in stages:
    batch = stage.process(batch).table
sketch = sketch_batch(batch, hasher)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
row = batch.drop_columns(["text"]).to_pylist()[0]
text = batch.column("text")[0].as_py()
print(json.dumps({
    "peak_mb": peak_mb,
    "row": {k: v for k, v in row.items() if isinstance(v, (int, float, str)) or v is None},
    "exact_key_ok": sketch.column("exact_hash")[0].as_py()
    == __import__("xxhash").xxh3_128_digest(" ".join(text.lower().split()).encode()),
    "n_chars": len(text),
    "n_words": len(text.split()),
    "bands_ok": len(sketch.column("bands")[0].as_py()) == hasher.bands,
}))
"""


def test_a_50m_character_document_stays_under_the_memory_bound(shared: Path):
    books_text(shared, 1)  # skips when the books are absent
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(shared), str(BIG_CHARS)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    row = figures["row"]
    assert figures["peak_mb"] < PEAK_BOUND_MB, figures
    assert row["n_chars"] == figures["n_chars"] > BIG_CHARS * 0.95
    assert row["n_words"] == figures["n_words"]
    assert figures["exact_key_ok"] and figures["bands_ok"]
    assert "gopher_quality:word_count" in row["rule_flags"]
    assert row["rule_word_count"] > figures["n_words"] * 0.9

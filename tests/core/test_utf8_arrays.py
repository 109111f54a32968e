"""Word counts on the bytes of an Arrow column (`curate.utf8_arrays.word_counts`) against Python's
`len(text.split())`: every whitespace character Python knows, their UTF-8 neighbours, and real text."""

from __future__ import annotations

import random

import pyarrow as pa

from curate.utf8_arrays import PYTHON_SPACE, word_counts
from tests.filters.web_docs import web_docs

WHITESPACE = [chr(code) for code in range(0x110000) if chr(code).isspace()]


def test_the_table_holds_every_whitespace_character():
    assert max(map(ord, WHITESPACE)) < len(PYTHON_SPACE)
    assert [chr(code) for code in range(len(PYTHON_SPACE)) if PYTHON_SPACE[code]] == WHITESPACE


def mixed_texts() -> list[str | None]:
    """Texts made of every whitespace character, their UTF-8 look-alikes (the same lead byte, or the
    same continuation bytes) and multi-byte letters, with empty and null texts between them."""
    rng = random.Random(7)
    alphabet = [*WHITESPACE, "a", ".", "é", "中", "😀", "\u00c2", "\u0084", "\u2010", "\u3001", "\u1681"]
    texts: list[str | None] = [None, "", "  ", " a ", "a", "\u3000\u3000b\u2029", "x\u2028y", "\x1cz\x1f"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    return texts


def test_word_counts_equal_python_split():
    texts = mixed_texts()
    expected = [len(text.split()) if text else 0 for text in texts]
    assert word_counts(texts).tolist() == expected
    column = pa.array(texts, pa.string())
    assert word_counts(column.slice(5, 300)).tolist() == expected[5:305]
    chunked = pa.chunked_array([column.slice(0, 100), column.slice(100)])
    assert word_counts(chunked).tolist() == expected


def test_word_counts_on_real_web_text(shared):
    texts = [doc.text for doc in web_docs(shared / "web")][:3000]
    assert word_counts(pa.array(texts, pa.large_string())).tolist() == [len(text.split()) for text in texts]

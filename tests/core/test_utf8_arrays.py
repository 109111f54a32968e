"""Word counts on the bytes of an Arrow column (`curate.utf8_arrays.word_counts`) against Python's
`len(text.split())`: every whitespace character Python knows, cut by block edges anywhere, and real text."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from curate import utf8_arrays
from curate.utf8_arrays import word_counts
from tests.filters.web_docs import web_docs

WHITESPACE = [chr(code) for code in range(0x110000) if chr(code).isspace()]


def test_the_byte_tables_hold_exactly_pythons_whitespace():
    wide = sorted(char.encode() for char in WHITESPACE if ord(char) > 0x7F)
    assert sorted(utf8_arrays._WIDE_SPACES) == wide
    ascii_spaces = [chr(byte) for byte in range(128) if utf8_arrays._ASCII_SPACE[byte]]
    assert ascii_spaces == [char for char in WHITESPACE if char < "\x80"]


def mixed_texts() -> list[str | None]:
    """Texts made of every whitespace character, their UTF-8 look-alikes (the same lead byte, or the
    same continuation bytes) and multi-byte letters, with empty and null texts between them."""
    rng = random.Random(7)
    alphabet = [*WHITESPACE, "a", ".", "é", "中", "😀", "\u00c2", "\u0084", "\u2010", "\u3001", "\u1681"]
    texts: list[str | None] = [None, "", "  ", " a ", "a", "\u3000\u3000b\u2029", "x\u2028y", "\x1cz\x1f"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(400)]
    return texts


@pytest.mark.parametrize("block_bytes", [1 << 24, 3, 4, 5, 64])
def test_word_counts_equal_python_split_with_blocks_cut_anywhere(monkeypatch, block_bytes):
    monkeypatch.setattr(utf8_arrays, "BLOCK_BYTES", block_bytes)
    texts = mixed_texts()
    expected = [len(text.split()) if text else 0 for text in texts]
    assert word_counts(texts).tolist() == expected
    column = pa.array(texts, pa.string())
    assert word_counts(column.slice(5, 300)).tolist() == expected[5:305]
    chunked = pa.chunked_array([column.slice(0, 100), column.slice(100)])
    assert word_counts(chunked).tolist() == expected


def test_word_counts_on_real_web_text(shared, monkeypatch):
    texts = [doc.text for doc in web_docs(shared / "web")][:3000]
    expected = [len(text.split()) for text in texts]
    assert word_counts(pa.array(texts, pa.large_string())).tolist() == expected
    monkeypatch.setattr(utf8_arrays, "BLOCK_BYTES", 4096)
    assert word_counts(pa.array(texts, pa.large_string())).tolist() == expected

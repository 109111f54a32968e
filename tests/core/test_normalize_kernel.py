"""The normalize stage's compiled whitespace pass (`curate.stages.normalize_kernel`) against the regex
passes it replaced, kept here as the reference: identical output on real web text, on random strings of
every character the rules treat specially, and for every combination of the stage's switches."""

from __future__ import annotations

import itertools
import random
import unicodedata

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curate.stages.normalize import Normalize, NormalizeParams, normalize_text, unicode_normalize
from curate.stages.normalize_kernel import (
    CONTROL_POINTS,
    UNICODE_SPACE_POINTS,
    may_change_under,
    normalize_whitespace,
)
from tests.filters.web_docs import web_docs

CONTROL_CHARS = r"[\x{00}-\x{08}\x{0B}\x{0C}\x{0E}-\x{1F}\x{7F}\x{200B}-\x{200D}\x{2060}\x{FEFF}]"
UNICODE_SPACES = r"[\x{A0}\x{1680}\x{2000}-\x{200A}\x{202F}\x{205F}\x{3000}]"


def regex_passes(
    text: pa.Array, strip_control: bool, unify: bool, collapse: bool, longest_kept: int
) -> pa.Array:
    """The stage's rules as the Arrow regex passes they were written as."""
    text = pc.replace_substring(text, "\r\n", "\n")
    text = pc.replace_substring(text, "\r", "\n")
    if strip_control:
        text = pc.replace_substring_regex(text, CONTROL_CHARS, "")
    if unify:
        text = pc.replace_substring_regex(text, UNICODE_SPACES, " ")
    if collapse:
        text = pc.replace_substring_regex(text, r"(\S)[ \t]{2,}", r"\1 ")
    text = pc.replace_substring_regex(text, r"[ \t]+\n", "\n")
    return pc.replace_substring_regex(text, rf"\n{{{longest_kept + 1},}}", "\n" * longest_kept)


def test_the_code_point_sets_are_the_regex_classes():
    every = pa.array([chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000])
    control = pc.match_substring_regex(every, CONTROL_CHARS)
    spaces = pc.match_substring_regex(every, UNICODE_SPACES)
    assert sorted(ord(c) for c in every.filter(control).to_pylist()) == sorted(CONTROL_POINTS)
    assert sorted(ord(c) for c in every.filter(spaces).to_pylist()) == sorted(UNICODE_SPACE_POINTS)


def tricky_texts(count: int, seed: int) -> list[str]:
    """Random strings over the characters the rules look at, their UTF-8 neighbours and plain letters."""
    rng = random.Random(seed)
    special = [" ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x01", "\x1f", "\x7f", "\x85", "\u2028"]
    special += [chr(c) for c in (*CONTROL_POINTS[-6:], *UNICODE_SPACE_POINTS[:4], 0x3000, 0x200E, 0x2061)]
    letters = ["a", "b", ".", "é", "中", "😀", "\u0301", "\ufefe"]
    alphabet = special * 3 + letters
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(count)]


SWITCHES = list(itertools.product([True, False], [True, False], [True, False], [1, 2, 3]))


@pytest.mark.parametrize("strip_control, unify, collapse, longest_kept", SWITCHES)
def test_compiled_pass_equals_the_regex_passes_on_tricky_text(strip_control, unify, collapse, longest_kept):
    texts = pa.array(tricky_texts(3000, seed=longest_kept), pa.large_string())
    switches = (strip_control, unify, collapse, longest_kept)
    assert normalize_whitespace(texts, *switches).to_pylist() == regex_passes(texts, *switches).to_pylist()


def test_compiled_pass_keeps_nulls_slices_and_the_string_type():
    texts = pa.array(["a  b\r\n\r\n\r\nc", None, "", " x \t\n"], pa.string())
    for column in (texts, texts.slice(1, 3)):
        got = normalize_whitespace(column, True, True, True, 2)
        assert got.type == pa.string()
        assert got.to_pylist() == regex_passes(column, True, True, True, 2).to_pylist()


def test_compiled_pass_equals_the_regex_passes_on_real_web_text(shared):
    texts = pa.array([doc.text for doc in web_docs(shared / "web")][:4000], pa.large_string())
    for switches in [(True, True, True, 2), (False, False, True, 1)]:
        assert normalize_whitespace(texts, *switches).equals(regex_passes(texts, *switches))


def test_the_stage_on_long_documents_cut_in_windows_equals_the_whole_text(monkeypatch):
    import curate.stages.normalize as normalize

    texts = pa.array(["\n".join(tricky_texts(400, seed=9)) + "\nEnd  of\t\tit.  "], pa.large_string())
    params = NormalizeParams()
    whole = normalize_text(texts, params)
    monkeypatch.setattr(normalize, "WINDOW_CHARS", 64)
    assert normalize_text(texts, params).equals(whole)
    assert Normalize(params).process(pa.table({"text": texts})).table.column("text").chunk(0).equals(whole)


def composing_texts(count: int, seed: int) -> list[str | None]:
    """Random strings over characters NFC/NFKC act on: precomposed and decomposed letters, combining
    marks in and out of order, Hangul syllables and jamo, compatibility forms, CJK compatibility
    ideographs (astral too), and characters that change under neither."""
    rng = random.Random(seed)
    alphabet = ["e", "\u0301", "\u0327", "\u0323", "é", "ṩ", "\u1100", "\u1161", "\u11a8", "가", "각"]
    alphabet += ["ﬁ", "①", "Ａ", "\u212b", "\u0958", "\u0cc2", "\u0cc6", "\u0b47", "\u0b3e", "\uf900"]
    alphabet += ["\U0002f800", "\U0001d15e", "😀", "\ufe0f", "\u200d", "中", " ", "\n", "a", "\U000e0100"]
    return [None, ""] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(count)
    ]


@pytest.mark.parametrize("form", ["NFC", "NFKC"])
def test_only_texts_that_may_change_are_normalised_and_the_result_is_unicodedatas(form, shared):
    from zipfile import ZipFile

    texts = composing_texts(4000, seed=len(form))
    with ZipFile(shared / "langid" / "udhr2.zip") as archive:  # hundreds of scripts and their marks
        texts += [archive.read(info).decode("utf-8", "replace") for info in archive.infolist()[:150]]
    texts += [doc.text for doc in web_docs(shared / "web")][:1000]
    column = pa.array(texts, pa.large_string())
    expected = [None if t is None else unicodedata.normalize(form, t) for t in texts]
    assert unicode_normalize(column, form).to_pylist() == expected
    suspects = may_change_under(column, form)
    assert all(suspects[i] for i, t in enumerate(texts) if t is not None and expected[i] != t)
    assert suspects.mean() < 0.9, "most texts are read once in the compiled scan, never in Python"

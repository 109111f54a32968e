"""The vectorised line rules (`filters.rules.lines`, `filters.rules.c4lines`) against the per-document
reference they replaced (tests/filters/heuristics_reference.py): every statistic, and every output of the
`heuristics` stage, identical on real web text, multilingual text (UDHR) and hand-made edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import filters.rules.engine as engine_module
import filters.rules.ngrams as ngrams_module
from bench.rule_chain import web_documents
from filters.heuristics import HeuristicRules, HeuristicsParams
from filters.rules.languages import LanguageRun
from filters.rules.lines import LineStats, measure_lines
from filters.rules.settings import RuleSet
from tests.filters.heuristics_reference import (
    assert_same_result,
    reference_line_stats,
    reference_repeated_groups,
)
from tests.filters.test_heuristics_languages import udhr_parts

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
EDGE_CASES = [
    "",
    "\n",
    "\n\n\n",
    "\u00a0\u3000\nsome words…\u2003\n\u2003• bullet here\n…\u00a0\n\u2028\n-",
    "   \n \t \n",
    "\r\n\r\n",
    "line one.\r\nline two is here.\r\nline three is here too.\r\n",
    "a\rb\x0bc\x0cd\x1ce\x1df\x1eg\x85h\u2028i\u2029j",
    "x" * 5000 + ".\n" + SENTENCE,
    ("word " * 300 + "y" * 1200 + " end of it.\n") * 2,
    "• first bullet point here.\n• second bullet point here.\n  - a dash item here.\n\u3000- wide space.",
    "- only dashes\n-\n--\n---",
    "Wait for it...\nAnd then…\nMore to come ... \nDone.\t",
    "!!!\n...\n???\n.\n;;;\n\"'\n'''",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n" * 6,
    "LOREM IPSUM is placeholder text that we use.\n" + SENTENCE,
    "lorem İpsum is not quite lorem ipsum at all.\n" + SENTENCE,
    "function f() { return 1; } is some code here.\n" + (SENTENCE + "\n") * 5,
    "You need JavaScript enabled to view this page.\n" + (SENTENCE + "\n") * 5,
    "Please read our Terms of Use before you go on.\n{ this braces line is kept.}\n" + SENTENCE,
    "This site uses cookies for analytics and ads.\nOur privacy policy is here for you.\n" + SENTENCE,
    "Sources say this is true [1] and also [edit] that [citation needed].\nAnd [١٢] too [x].",
    "Mr. Smith went to Washington. He liked it.\nThe U.S. Virgin Islands are warm. Really? Yes!\n" * 2,
    "They arrived.Then they left. It was 3.5 p.m. and e.g. late.\n" * 3,
    "Quoted line that ends here.\"\nAnother one ends with a quote.'\nAnd a closing guillemet here.»",
    "Dup line here.\nDup line here.\nDup line here.\n\nDup line here.\n\n\n\nDup line here.",
    "\n\nleading and trailing newlines here.\n\n",
    "  \u00a0 spaced\u00a0out line with nbsp words here. \u00a0\n\u2003em space line is also here.\u2003",
    "日本語の文です。これは二番目の文です！\n中文句子在这里。还有一句？\n",
    "Ελληνικά κείμενο εδώ. Και άλλη πρόταση εδώ;\nРусский текст здесь. Ещё одно предложение!",
    "tab\tseparated\twords\tin\ta\tline.\n" * 4,
    "a" * 31 + "\n" + "b" * 30 + "\n" + "c" * 29 + ".",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 astral letters here. 😀 emoji line here too!\n" * 3,
]


@pytest.fixture(scope="module")
def web_texts(shared: Path) -> list[str]:
    texts = web_documents(shared)
    return texts[:: max(1, len(texts) // 500)]


def assert_same_stats(got: LineStats, expected: LineStats) -> None:
    for name in ("duplicates", "bullets", "lorem", "curly", "few_sentences", "fineweb"):
        mine, theirs = getattr(got, name), getattr(expected, name)
        assert (mine is None) == (theirs is None), name
        if theirs is not None:
            assert mine.dtype == theirs.dtype, name
            differ = np.flatnonzero((mine != theirs).reshape(len(mine), -1).any(axis=1))
            assert not len(differ), f"{name} differs for documents {differ[:5].tolist()}"


def english(texts: list[str]) -> list[LanguageRun]:
    return [LanguageRun("en", 0, len(texts))]


def test_edge_cases_match_the_reference():
    assert_same_stats(
        measure_lines(EDGE_CASES, RuleSet(), english(EDGE_CASES)),
        reference_line_stats(EDGE_CASES, RuleSet(), english(EDGE_CASES)),
    )


def test_real_web_text_matches_the_reference(web_texts):
    texts = web_texts + EDGE_CASES
    assert len(web_texts) >= 300
    got = measure_lines(texts, RuleSet(), english(texts))
    assert_same_stats(got, reference_line_stats(texts, RuleSet(), english(texts)))
    assert got.lorem.any() or got.curly.any()  # the rare paths are exercised
    assert got.bullets[:, 1].any() and got.bullets[:, 2].any()


@pytest.mark.parametrize(
    "rules",
    [
        RuleSet(c4={"require_terminal_punct": False, "remove_citations": False, "max_word_length": 12}),
        RuleSet(c4={"min_words_per_line": None, "min_sentences": None, "reject_lorem_ipsum": False}),
        RuleSet(
            c4={"drop_javascript_lines": False, "drop_policy_lines": False, "reject_curly_bracket": False},
            fineweb={"short_line_length": 60},
        ),
        RuleSet(gopher_repetition={"enabled": False}, gopher_quality={"enabled": False}),
        RuleSet(c4={"enabled": False}, fineweb={"enabled": False}),
    ],
)
def test_other_settings_match_the_reference(web_texts, rules):
    texts = web_texts[:150] + EDGE_CASES
    assert_same_stats(
        measure_lines(texts, rules, english(texts)), reference_line_stats(texts, rules, english(texts))
    )


def test_languages_match_the_reference(shared):
    spaced = {"deu": "de", "fra": "fr", "rus": "ru", "eng": "en"}
    texts, runs = [], []
    for stem, lang in spaced.items():
        parts = udhr_parts(shared, stem, 6) + EDGE_CASES[-8:]
        runs.append(LanguageRun(lang, len(texts), len(texts) + len(parts)))
        texts += parts
    rules = RuleSet()
    assert_same_stats(measure_lines(texts, rules, runs), reference_line_stats(texts, rules, runs))
    for stem, lang in {"cmn_hans": "zh", "jpn": "ja", "tha": "th"}.items():
        parts = udhr_parts(shared, stem, 6) + EDGE_CASES[-8:]
        runs = [LanguageRun(lang, 0, len(parts))]
        assert_same_stats(measure_lines(parts, rules, runs), reference_line_stats(parts, rules, runs))


@pytest.mark.parametrize("part_keys", [1 << 18, 64])
def test_ngram_groups_match_counters_numbering(monkeypatch, part_keys):
    """Repeated n-gram keys numbered by first appearance, in one part or in many (sorted separately)."""
    monkeypatch.setattr(ngrams_module, "_PART_KEYS", part_keys)
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 2**64, size=5000, dtype=np.uint64, endpoint=False)
    keys[rng.integers(0, 5000, 3000)] = keys[rng.integers(0, 5000, 3000)]
    keys[:40] = keys[4000:4040]  # repeats far apart, first seen early
    got = ngrams_module._repeated_groups(keys)
    assert got.tolist() == reference_repeated_groups(keys.tolist())
    assert ngrams_module._repeated_groups(np.zeros(0, dtype=np.uint64)).tolist() == []
    segments = np.array([0, 1000, 1000, 3000, 5000])  # runs (one empty) whose keys never meet: documents
    run = np.searchsorted(segments, np.arange(5000), side="right") - 1
    keys = rng.integers(0, 900, size=5000, dtype=np.uint64) | run.astype(np.uint64) << np.uint64(58)
    got = ngrams_module._repeated_groups(keys, segments)
    assert got.tolist() == reference_repeated_groups(keys.tolist())


@pytest.mark.parametrize("mode", ["drop", "annotate"])
def test_stage_outputs_are_identical(web_texts, shared, monkeypatch, mode):
    """The whole stage, with a `lang` column mixing languages: every column, drop reason and stat."""
    udhr = udhr_parts(shared, "fra", 4) + udhr_parts(shared, "jpn", 4) + udhr_parts(shared, "deu", 4)
    texts = web_texts[:200] + EDGE_CASES + udhr
    langs = ["en"] * (200 + len(EDGE_CASES)) + ["fr"] * 4 + ["ja"] * 4 + [None] * 4
    batch = pa.table({"text": pa.array(texts), "lang": pa.array(langs, pa.string())})
    stage = HeuristicRules(HeuristicsParams(mode=mode))
    got = stage.process(batch)
    monkeypatch.setattr(engine_module, "measure_lines", reference_line_stats)
    expected = HeuristicRules(HeuristicsParams(mode=mode)).process(batch)
    assert_same_result(got, expected)

"""The heuristics stage per language (the `lang` column of langid), on real text read at run time:
the Universal Declaration of Human Rights in many languages (../shared/data/langid/udhr2.zip), French
books, real English web documents and C4's LDNOOBW bad-word lists (../shared/data/badwords)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from bench.rule_chain import web_documents
from filters.heuristics import HeuristicRules, HeuristicsParams
from filters.rules import RuleEngine, RuleSet
from filters.rules.badwords import default_bad_words
from filters.rules.languages import ldnoobw_words, package_stop_words
from filters.rules.words import tokenize
from tests.conftest import run_cli
from tests.core.helpers import read_parts, write_config

UNSPACED_UDHR = {"cmn_hans": "zh", "cmn_hant": "zh", "jpn": "ja", "tha": "th", "khm": "km", "lao": "lo"}
SPACED_UDHR = {"deu": "de", "fra": "fr", "rus": "ru", "spa": "es", "ita": "it", "eng": "en"}


def udhr(shared: Path, stem: str) -> str:
    """One UDHR translation, its non-blank lines stripped (the files indent and pad with blank lines)."""
    with zipfile.ZipFile(shared / "langid" / "udhr2.zip") as archive:
        text = archive.read(f"udhr2/{stem}.txt").decode("utf-8")
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def udhr_parts(shared: Path, stem: str, parts: int) -> list[str]:
    """The translation cut into `parts` documents of consecutive lines."""
    lines = udhr(shared, stem).splitlines()
    return ["\n".join(chunk) for chunk in np.array_split(np.array(lines, dtype=object), parts)]


def flags_of(report, doc: int) -> set[str]:
    flags = report.flags()[doc]
    return set(flags.split(",")) if flags else set()


@pytest.fixture(scope="module")
def badwords_dir(shared: Path) -> Path:
    return shared / "badwords"


@pytest.fixture(scope="module")
def engine(badwords_dir: Path) -> RuleEngine:
    return RuleEngine(RuleSet(c4={"bad_words_dir": str(badwords_dir), "reject_bad_words": True}))


# ------------------------------------------------------------------------------------------- words


def test_unspaced_scripts_split_into_letters_and_latin_stays_whole(shared):
    line = next(line for line in udhr(shared, "cmn_hans").splitlines() if "1948" in line)
    tokens = tokenize(line, split_unspaced=True)
    han = [t for t in tokens if re.fullmatch(r"[\u4e00-\u9fff]+", t)]
    assert han and all(len(t) == 1 for t in han)
    assert "1948" in tokens and "，" in tokens  # digits stay one token, fullwidth punctuation is its own
    assert max(map(len, tokenize(line))) > 20  # the English tokenizer sees whole clauses as one word


def test_unspaced_documents_are_not_dropped_by_word_rules(shared, engine):
    """Real Chinese, Japanese, Thai, Khmer and Lao documents of a few hundred words each: with their
    language they pass the word-count rule and skip mean word length; as English they fail it."""
    texts, langs = [], []
    for stem, lang in UNSPACED_UDHR.items():
        for part in udhr_parts(shared, stem, 4):
            texts.append(part)
            langs.append(lang)
    english_words = engine.evaluate(udhr_parts(shared, "eng", 4)).signals["rule_word_count"]
    report = engine.evaluate(texts, langs)
    as_english = engine.evaluate(texts)
    for doc in range(len(texts)):
        assert not flags_of(report, doc) & {"gopher_quality:word_count", "gopher_quality:mean_word_length"}
        assert "gopher_quality:mean_word_length" in flags_of(as_english, doc)
    assert report.skipped["gopher_quality:mean_word_length"].all()
    assert np.isnan(report.signals["rule_mean_word_length"]).all()
    # letters / k estimate the words of the same text in English within a third
    words = report.signals["rule_word_count"].reshape(len(UNSPACED_UDHR), 4).sum(axis=1)
    assert np.all(np.abs(words / english_words.sum() - 1) < 0.35), words
    chinese = [d for d, lang in enumerate(langs) if lang == "zh"]
    assert not any(flags_of(report, d) for d in chinese), [report.flags()[d] for d in chinese]


def test_short_unspaced_document_still_fails_word_count(shared, engine):
    text = udhr(shared, "cmn_hans")[:60]
    assert "gopher_quality:word_count" in flags_of(engine.evaluate([text], ["zh"]), 0)


# -------------------------------------------------------------------------------------- stop words


def test_stop_words_per_language(shared, engine):
    """UDHR in German, French, Russian, Spanish, Italian passes the rule with its own list and fails
    with Gopher's English words; the same German text stripped of its stop words fails with its own."""
    texts = [udhr_parts(shared, stem, 3)[1] for stem in SPACED_UDHR]
    langs = list(SPACED_UDHR.values())
    own = engine.evaluate(texts, langs)
    english = engine.evaluate(texts)
    for doc, lang in enumerate(langs):
        assert "gopher_quality:stop_words" not in flags_of(own, doc), lang
        assert ("gopher_quality:stop_words" in flags_of(english, doc)) == (lang != "en"), lang
    german_stop = set(package_stop_words("de"))
    stripped = " ".join(w for w in texts[0].split() if re.sub(r"\W", "", w).lower() not in german_stop)
    assert "gopher_quality:stop_words" in flags_of(engine.evaluate([stripped], ["de"]), 0)


def test_language_without_stop_words_skips_the_rule_and_the_stage_counts_it(shared, badwords_dir):
    stage = HeuristicRules(HeuristicsParams(mode="annotate", c4={"bad_words_dir": str(badwords_dir)}))
    thai = udhr_parts(shared, "tha", 3)
    batch = pa.table({"text": thai + [udhr(shared, "deu")], "lang": ["th"] * 3 + ["de"]})
    result = stage.process(batch)
    assert package_stop_words("th") is None
    assert result.stats["skipped:gopher_quality:stop_words:th"] == 3
    assert "skipped:gopher_quality:stop_words:de" not in result.stats
    assert result.stats["skipped:gopher_quality:mean_word_length:th"] == 3
    counts = result.table.column("rule_bad_word_count").to_pylist()
    assert counts[:3] == [0, 0, 0] and counts[3] == 0  # both have an LDNOOBW list


# -------------------------------------------------------------------------------------- bad words


def a_word_only_in(badwords_dir: Path, lang: str, others: list[str]) -> str:
    """A single-word entry of one language's LDNOOBW list that no other list (nor the English default)
    holds, so that a hit can only come from that language's list."""
    elsewhere = {w.lower() for other in others for w in ldnoobw_words(badwords_dir, other)}
    elsewhere |= set(default_bad_words())
    return next(
        w for w in ldnoobw_words(badwords_dir, lang) if re.fullmatch(r"\w{5,}", w) and w not in elsewhere
    )


def test_planted_bad_word_fires_in_its_own_language_only(shared, engine, badwords_dir):
    german = udhr_parts(shared, "deu", 3)[1]
    candide = (shared / "langid" / "french_books" / "Candide.txt").read_text("utf-8", errors="replace")
    french = next(
        p
        for p in (candide[i : i + 6000] for i in range(20_000, len(candide), 6000))
        if engine.evaluate([p], ["fr"]).signals["rule_bad_word_count"][0] == 0
    )
    de_word = a_word_only_in(badwords_dir, "de", ["fr"])
    fr_word = a_word_only_in(badwords_dir, "fr", ["de"])
    planted_de = german.replace("\n", f" {de_word}.\n", 1)
    planted_fr = french.replace("\n", f" {fr_word}.\n", 1)

    texts = [german, planted_de, planted_de, french, planted_fr, planted_fr]
    langs = ["de", "de", "fr", "fr", "fr", "de"]
    report = engine.evaluate(texts, langs)
    assert report.signals["rule_bad_word_count"].tolist() == [0, 1, 0, 0, 1, 0]
    assert ["c4:bad_words" in flags_of(report, d) for d in range(6)] == [0, 1, 0, 0, 1, 0]


def test_japanese_bad_words_match_inside_words_like_c4(shared, engine, badwords_dir):
    """ja, th and zh lists match as substrings (no spaces to bound a word), minus C4's allowlist."""
    japanese = udhr_parts(shared, "jpn", 4)[3]
    base = engine.evaluate([japanese], ["ja"]).signals["rule_bad_word_count"][0]
    entry = next(w for w in ldnoobw_words(badwords_dir, "ja") if re.fullmatch(r"[\u30a0-\u30ff]{3,}", w))
    planted = japanese.replace("。", f"。これは{entry}です。", 1)
    allowlisted = japanese.replace("。", "。これは女の子です。", 1)
    counts = engine.evaluate([planted, allowlisted, planted], ["ja", "ja", "de"]).signals[
        "rule_bad_word_count"
    ]
    assert counts.tolist() == [base + 1, base, 0]


# ----------------------------------------------------------------------------- English unchanged


def test_english_web_documents_are_identical_with_and_without_languages(shared, badwords_dir):
    """Real English web documents: the same rule_flags, drop reasons and signals whether the batch has
    no lang column, an all-English one, an all-null one (English), or English rows mixed with other
    languages (regrouped inside the stage)."""
    english = web_documents(shared)[:150]
    others = [udhr_parts(shared, stem, 2)[0] for stem in ("cmn_hans", "deu", "jpn", "fra", "tha")]
    params = HeuristicsParams(mode="drop", c4={"bad_words_dir": str(badwords_dir)})
    stage = HeuristicRules(params)
    plain = stage.process(pa.table({"text": english}))
    tagged = stage.process(pa.table({"text": english, "lang": ["en"] * len(english)}))
    unknown = stage.process(pa.table({"text": english, "lang": pa.nulls(len(english), pa.string())}))
    mixed_texts = [t for i, t in enumerate(english) for t in ([t, others[i % 5]] if i % 3 == 0 else [t])]
    mixed_langs = [
        lang
        for i in range(len(english))
        for lang in (["en", ["zh", "de", "ja", "fr", "th"][i % 5]] if i % 3 == 0 else ["en"])
    ]
    mixed = stage.process(pa.table({"text": mixed_texts, "lang": mixed_langs}))
    english_rows = [i for i, lang in enumerate(mixed_langs) if lang == "en"]
    columns = [c for c in plain.table.column_names if c.startswith("rule_")]
    for result, rows in ((tagged, None), (unknown, None), (mixed, english_rows)):
        table = result.table if rows is None else result.table.take(rows)
        for column in columns:
            assert table.column(column).equals(plain.table.column(column)), column
        reasons = result.drop_reason if rows is None else result.drop_reason.take(rows)
        assert reasons.equals(plain.drop_reason)
    assert plain.drop_reason.null_count not in (0, len(english)), "the documents exercise the rules"


# ------------------------------------------------------------------------------------------- CLI


def test_cli_run_with_langid_then_heuristics(shared, badwords_dir, tmp_path):
    """`curate run` with langid and heuristics on a shard of real documents in five languages."""
    docs = {
        "zh": udhr_parts(shared, "cmn_hans", 2)[1],
        "ja": udhr_parts(shared, "jpn", 2)[1],
        "de": udhr_parts(shared, "deu", 2)[1],
        "fr": udhr_parts(shared, "fra", 2)[1],
        "th": udhr_parts(shared, "tha", 2)[1],
    }
    shard = tmp_path / "in" / "udhr.jsonl"
    shard.parent.mkdir()
    shard.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in docs.items()), "utf-8")
    config = write_config(
        tmp_path,
        {
            "inputs": [{"path": str(shard), "name": "udhr"}],
            "stages": [
                {"langid": {}},
                {"heuristics": {"mode": "annotate", "c4": {"bad_words_dir": str(badwords_dir)}}},
            ],
        },
    )
    done = run_cli("run", str(config), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    heuristics = next(s for s in manifest["stages"] if s["stage"] == "heuristics")
    assert heuristics["stats"]["skipped:gopher_quality:stop_words:th"] == 1
    assert heuristics["stats"]["skipped:gopher_quality:mean_word_length:zh"] == 1
    rows = {r["id"]: r for r in read_parts(tmp_path / "out" / "corpus").to_pylist()}
    assert {r["lang"] for r in rows.values()} == set(docs)
    for lang in ("zh", "ja"):
        assert (
            "word_count" not in rows[lang]["rule_flags"]
            and "mean_word_length" not in rows[lang]["rule_flags"]
        )
        assert rows[lang]["rule_word_count"] > 300


def test_a_missing_bad_words_dir_fails_at_config_load(tmp_path):
    with pytest.raises(ValueError, match="nope is not a folder: give a folder of word lists"):
        HeuristicsParams(c4={"bad_words_dir": str(tmp_path / "nope")})

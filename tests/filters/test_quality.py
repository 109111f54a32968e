"""quality on real text: a small DCLM-style classifier trained here, ranked on held-out Wikipedia vs web
pages people judged low quality, and on the DCLM human labels it never trains on."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curate.config import parse_config
from curate.errors import ConfigError
from curate.schema import BASE_SCHEMA, conform
from curate.stages.registry import get_stage
from curate.textsources import wikipedia_pages
from filters import corpora
from filters.commands import models_list
from filters.fasttext_training import held_out
from filters.kenlm_training import train_kenlm, write_corpus
from filters.quality import QualityParams, ensemble_score
from filters.quality_recipe import (
    SKIPGRAM_UNLABELLED,
    WEB_REPEAT,
    dclm_half,
    dclm_labels,
    family_repeats,
    shingles,
    train_quality,
    training_set,
    unlabelled_families,
    without_evaluation_text,
)

SMALL = {"epoch": 4, "dim": 16, "bucket": 100_000}


def batch_of(texts: list[str | None]) -> pa.Table:
    ids = [f"doc{i}" for i in range(len(texts))]
    table = pa.table({"id": ids, "text": pa.array(texts, pa.large_string()), "source": ["test"] * len(texts)})
    return conform(table, BASE_SCHEMA)


@pytest.fixture(scope="session")
def quality_home(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("quality-models")
    train_quality(
        "quality-test",
        lm=None,
        books_mb=2.0,
        hyperparams=SMALL,
        home=home,
        log=lambda _: None,
        skipgram={"epoch": 1},
    )  # skip-gram pretraining as by default, one epoch instead of three to save test time
    return home


def score(home: Path, texts: list[str | None], **params):
    stage = get_stage("quality")(QualityParams(model="quality-test", models_dir=home, **params))
    stage.setup()
    result = stage.process(batch_of(texts))
    return np.asarray(result.table.column("quality").to_pylist()), result


def test_card_has_held_out_and_dclm_metrics_with_the_length_baseline(quality_home: Path) -> None:
    card = json.loads((quality_home / "quality-test" / "card.json").read_text())
    assert card["kind"] == "fasttext-quality"
    assert card["metrics"]["held_out"]["roc_auc"] > 0.95
    dclm = card["metrics"]["dclm"]
    assert dclm["all"]["documents"] == 499 and dclm["all"]["positives"] == 272
    assert dclm["dev"]["documents"] + dclm["test"]["documents"] == 499
    assert dclm["all"]["classifier_roc_auc"] > 0.65 and 0.7 < dclm["all"]["length_baseline_roc_auc"] < 0.8
    assert "kenlm_baseline_roc_auc" not in dclm["test"]  # trained without a language model
    assert {e["source"] for e in card["data"] if not e["source"].startswith("unlabelled/")} == {
        "wikipedia",
        "books",
        "news",
        "web",
        "social",
        "forums",
    }
    assert card["params"]["repeats"]["web"] == WEB_REPEAT and card["params"]["repeats"]["news"] > 1


def test_card_records_the_skipgram_vectors_and_their_unlabelled_text(quality_home: Path) -> None:
    card = json.loads((quality_home / "quality-test" / "card.json").read_text())
    skipgram = card["params"]["skipgram"]
    assert skipgram["epoch"] == 1 and skipgram["lr"] == 0.05 and skipgram["dim"] == SMALL["dim"]
    assert skipgram["corpus"] == ["training chunks"] + [f"unlabelled/{f}" for f in SKIPGRAM_UNLABELLED]
    assert (
        skipgram["vocabulary"] > 10_000 and skipgram["corpus_words"] > 500_000 and skipgram["cpu_seconds"] > 0
    )
    assert "pretrainedVectors" not in card["params"]  # a temporary file, not a setting
    unlabelled = {e["source"]: e["texts"] for e in card["data"] if e["source"].startswith("unlabelled/")}
    assert (
        set(unlabelled) == {f"unlabelled/{f}" for f in SKIPGRAM_UNLABELLED} and min(unlabelled.values()) > 0
    )
    assert card["metrics"]["train_attempts"] == 1 and card["metrics"]["train_cpu_seconds"] > 0


def test_unlabelled_text_leaves_out_held_out_documents_and_evaluation_text(shared: Path) -> None:
    families = unlabelled_families(shared)
    assert set(families) == set(SKIPGRAM_UNLABELLED)
    assert not any(held_out(group) for examples in families.values() for _, _, group in examples)
    texts, _ = dclm_labels(shared)
    held = set().union(*(shingles(text) for text in texts))
    assert all(held.isdisjoint(shingles(e[0])) for examples in families.values() for e in examples[:500])


def test_models_list_headlines_the_test_half_and_all_labels(quality_home: Path) -> None:
    (row,) = [r for r in models_list(quality_home) if r["name"] == "quality-test"]
    assert {"test_classifier_roc_auc", "test_length_baseline_roc_auc", "all_classifier_roc_auc"} <= set(
        row["metrics"]
    )


def test_training_chunks_that_quote_an_evaluation_document_are_dropped(shared: Path) -> None:
    texts, _ = dclm_labels(shared)
    quoted = "A page quoting another: " + " ".join(texts[7].split()[20:40])
    unrelated = next(t for s, t in corpora.gensim_wikipedia())[:2000]
    families = {"web": [(quoted, 0, "a"), (unrelated, 0, "b")]}
    kept = without_evaluation_text(families, texts)
    assert [e[2] for e in kept["web"]] == ["b"]


def test_news_is_repeated_up_to_its_share_of_the_balanced_positives() -> None:
    def examples(n: int, label: int) -> list:
        return [(f"text {i}", label, f"doc{i}") for i in range(n)]

    families = {
        "wikipedia": examples(900, 1),
        "books": examples(900, 1),
        "news": examples(150, 1),
        "web": examples(100, 0),
        "social": examples(1000, 0),
        "forums": examples(900, 0),
    }
    repeats = family_repeats(families)
    assert repeats["web"] == WEB_REPEAT and repeats["wikipedia"] == repeats["books"] == 1
    assert repeats["news"] == 6  # share (800 + 1000 + 900) / 3 = 900 chunks = 6 x 150
    train, _ = training_set(families)
    positives = sum(e[1] for e in train)
    assert 0.8 < positives / (len(train) - positives) < 1.2


def test_dclm_halves_are_stable_and_each_holds_both_labels(shared: Path) -> None:
    texts, labels = dclm_labels(shared)
    halves = np.array([dclm_half(text) for text in texts])
    assert [dclm_half(text) for text in texts[:20]] == list(halves[:20])  # no seed, no state
    for half in ("dev", "test"):
        chosen = labels[halves == half]
        assert 200 < len(chosen) < 300 and 0.3 < chosen.mean() < 0.7


def test_held_out_wikipedia_outscores_web_pages_judged_low_quality(quality_home: Path, shared: Path) -> None:
    wiki = [t for s, t in corpora.gensim_wikipedia() if held_out(s)][:15]
    texts, labels = dclm_labels(shared)
    low = [t for t, y in zip(texts, labels, strict=True) if y == 0][:60]
    values, _ = score(quality_home, wiki + low)
    good, bad = values[: len(wiki)], values[len(wiki) :]
    assert np.median(good) > 0.5 > np.median(bad)
    assert np.mean(good[:, None] > bad[None, :]) > 0.9


def test_min_quality_drops_with_a_reason(quality_home: Path, shared: Path) -> None:
    page = next(t for s, t in corpora.gensim_wikipedia() if held_out(s))
    spam = "BUY NOW!!! cheap pills click here free shipping best price\nLogin | Register | Cart (0)"
    values, result = score(quality_home, [page, spam], min_quality=0.5)
    assert values[0] > 0.5 > values[1]
    assert result.drop_reason.to_pylist() == [None, "quality:below_min"]
    assert result.stats["quality:below_min"] == 1


def test_ensemble_moves_with_both_signals() -> None:
    stats = {"logit_mean": 0.0, "logit_std": 1.0, "log_ppl_mean": np.log(500.0), "log_ppl_std": 1.0}
    p = np.array([0.5, 0.9, 0.5, 0.5])
    ppl = np.array([500.0, 500.0, 100.0, np.nan])
    combined = ensemble_score(p, ppl, stats)
    assert combined[0] == pytest.approx(0.5) and combined[3] == pytest.approx(0.5)
    assert combined[1] > 0.5 and combined[2] > 0.5


def test_ensemble_without_statistics_and_missing_or_cut_models_are_config_errors(
    quality_home: Path, tmp_path: Path, kenlm_tools
) -> None:
    lm = quality_home / "wiki-5gram"
    lm.mkdir(exist_ok=True)
    (lm / "card.json").write_text(
        json.dumps({"name": "wiki-5gram", "kind": "kenlm", "files": {"model": "model.bin"}})
    )
    (lm / "model.bin").write_bytes(b"")
    stage = {"quality": {"model": "quality-test", "models_dir": str(quality_home), "ppl_model": "wiki-5gram"}}
    with pytest.raises(ConfigError, match="model.bin is not a KenLM binary of format 5"):
        parse_config({"inputs": [{"path": "x.jsonl"}], "stages": [stage]})
    write_corpus([text for _, text in islice(wikipedia_pages(), 50)], tmp_path / "corpus.txt")
    train_kenlm(tmp_path / "corpus.txt", lm, order=2, prune=None, log=lambda _: None)
    with pytest.raises(ConfigError, match="curate models train-quality --name quality-test --lm wiki-5gram"):
        parse_config({"inputs": [{"path": "x.jsonl"}], "stages": [stage]})
    classifier = quality_home / "quality-test" / "model.bin"
    whole = classifier.read_bytes()
    try:
        classifier.write_bytes(whole[: len(whole) // 3])
        with pytest.raises(ConfigError, match="model.bin does not end with its output matrix"):
            parse_config(
                {
                    "inputs": [{"path": "x.jsonl"}],
                    "stages": [{"quality": {"model": "quality-test", "models_dir": str(quality_home)}}],
                }
            )
    finally:
        classifier.write_bytes(whole)
    missing = {"quality": {"model": "nope", "models_dir": str(tmp_path)}}
    with pytest.raises(ConfigError, match="curate models train-quality --name nope"):
        parse_config({"inputs": [{"path": "x.jsonl"}], "stages": [missing]})

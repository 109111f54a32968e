"""toxicity on real labelled data: a small fastText model trained here, held-out scores, the word-list
fallback and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curate.config import parse_config
from curate.errors import ConfigError
from curate.schema import BASE_SCHEMA, conform
from curate.stages.registry import get_stage
from filters import corpora
from filters.fasttext_training import held_out
from filters.toxicity import ToxicityParams, profanity_rate
from filters.toxicity_recipe import train_toxicity

SMALL = {"epoch": 4, "dim": 16, "bucket": 100_000}


def batch_of(texts: list[str | None]) -> pa.Table:
    ids = [f"doc{i}" for i in range(len(texts))]
    table = pa.table({"id": ids, "text": pa.array(texts, pa.large_string()), "source": ["test"] * len(texts)})
    return conform(table, BASE_SCHEMA)


@pytest.fixture(scope="session")
def toxicity_home(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("toxicity-models")
    train_toxicity("toxicity-test", hyperparams=SMALL, home=home, log=lambda _: None)
    return home


def score(home: Path, texts: list[str | None], **params) -> tuple[np.ndarray, object]:
    stage = get_stage("toxicity")(ToxicityParams(model="toxicity-test", models_dir=home, **params))
    stage.setup()
    result = stage.process(batch_of(texts))
    return np.asarray(result.table.column("toxicity").to_pylist()), result


def test_card_reports_held_out_precision_recall_f1_auc(toxicity_home: Path) -> None:
    import json

    card = json.loads((toxicity_home / "toxicity-test" / "card.json").read_text())
    held = card["metrics"]["held_out"]
    assert set(held) >= {"precision", "recall", "f1", "roc_auc"}
    assert held["roc_auc"] > 0.9 and held["f1"] > 0.85
    assert card["metrics"]["held_out_domain"]["roc_auc"] > 0.95
    assert {entry["source"] for entry in card["data"]} == {"davidson", "stormfront", "domain"}


def test_held_out_toxic_threads_score_above_wikipedia_and_news(toxicity_home: Path, shared: Path) -> None:
    threads = [t for s, t in corpora.fourchan_threads(shared / "toxicity") if held_out(s)][:15]
    clean = [t for s, t in corpora.gensim_wikipedia() if held_out(s)][:10]
    clean += [t for s, t in corpora.news_documents() if held_out(s)][:10]
    assert len(threads) >= 10 and len(clean) >= 15
    values, _ = score(toxicity_home, threads + clean)
    toxic, benign = values[: len(threads)], values[len(threads) :]
    assert np.median(toxic) > 0.5 > np.median(benign)
    assert np.mean(toxic[:, None] > benign[None, :]) > 0.9  # pairwise AUC


def test_held_out_labelled_tweets_are_ranked(toxicity_home: Path, shared: Path) -> None:
    tweets = [
        (t, y)
        for i, (t, y) in enumerate(corpora.davidson_examples(shared / "toxicity"))
        if held_out(f"davidson/{i}")
    ]
    texts = [t for t, _ in tweets]
    labels = np.array([y for _, y in tweets])
    values, _ = score(toxicity_home, texts, wordlist_weight=0.0)
    assert values[labels == 1].mean() > values[labels == 0].mean() + 0.3


def test_threshold_drops_with_a_reason(toxicity_home: Path, shared: Path) -> None:
    thread = next(t for s, t in corpora.fourchan_threads(shared / "toxicity") if held_out(s))
    page = next(t for s, t in corpora.gensim_wikipedia() if held_out(s))
    values, result = score(toxicity_home, [thread, page, ""], max_toxicity=0.5)
    assert result.drop_reason.to_pylist() == ["toxicity:above_max", None, None]
    assert values[2] == 0.0 and all(0.0 <= v <= 1.0 for v in values)


def test_word_list_fallback_is_counted_for_the_manifest(tmp_path: Path) -> None:
    texts = ["You are a stupid fucking idiot, shit.", "The committee met on Tuesday to review the budget."]
    params = ToxicityParams(model="absent", models_dir=tmp_path, fallback="wordlist")
    stage = get_stage("toxicity")(params)
    stage.setup()
    result = stage.process(batch_of(texts))
    values = result.table.column("toxicity").to_pylist()
    assert values[0] == pytest.approx(1.0) and values[1] == 0.0
    assert result.stats["toxicity:wordlist_fallback"] == 2
    assert profanity_rate(pa.array(texts))[0] == pytest.approx(3 / 7)  # stupid, fucking, shit


def test_missing_model_with_data_present_names_the_train_command(shared: Path, tmp_path: Path) -> None:
    raw = {
        "inputs": [{"path": "x.jsonl"}],
        "stages": [{"toxicity": {"model": "absent", "models_dir": str(tmp_path)}}],
    }
    with pytest.raises(ConfigError, match="curate models train-toxicity --name absent"):
        parse_config(raw)

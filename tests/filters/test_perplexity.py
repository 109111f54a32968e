"""KenLM perplexity on real text: a small 5-gram trained here, buckets, drops, the harmful-text LM."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curate.config import parse_config
from curate.errors import ConfigError
from curate.schema import BASE_SCHEMA, conform
from curate.stages.registry import get_stage
from curate.textsources import news_texts, shared_data_dir
from filters import corpora
from filters.kenlm_lm import load_kenlm, normalize_text, perplexities
from filters.model_registry import ModelMissingError, find_model, require_model
from filters.perplexity import PerplexityParams
from filters.perplexity_recipe import bucket_sample, calibrate_lm, cutoffs_for, split_held_out, train_lm


def batch_of(texts: list[str | None]) -> pa.Table:
    ids = [f"doc{i}" for i in range(len(texts))]
    table = pa.table({"id": ids, "text": pa.array(texts, pa.large_string()), "source": ["test"] * len(texts)})
    return conform(table, BASE_SCHEMA)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory, kenlm_tools: dict[str, Path]) -> Path:
    """A models home with a small reference 5-gram: Wikipedia only (no books) to keep training short."""
    home = tmp_path_factory.mktemp("models")
    train_lm("wiki-test", books_mb=0, home=home, log=lambda _: None)
    return home


@pytest.fixture(scope="session")
def held_out_wikipedia() -> list[str]:
    """Wikipedia pages the `models` fixture held out of training (the same split train_lm makes)."""
    _, held = split_held_out(list(corpora.lm_reference_documents(shared_data_dir(), 0)))
    return [text for source, text in held if source.startswith("gensim-wikipedia")]


def stage(home: Path, **params):
    built = get_stage("perplexity")(PerplexityParams(model="wiki-test", models_dir=home, **params))
    built.setup()
    return built


def shuffled_words(text: str, seed: int) -> str:
    words = text.split()
    random.Random(seed).shuffle(words)
    return " ".join(words)


def test_normalisation_follows_ccnet() -> None:
    assert normalize_text("Élan: 1984 «vite»—Café…\u200b") == 'elan : 0000 " vite " - cafe . . .'
    assert normalize_text("Line one.\n\n  Line   two!") == "line one .\nline two !"


def test_card_records_data_params_and_held_out_perplexity(models: Path) -> None:
    card = json.loads((models / "wiki-test" / "card.json").read_text())
    assert card["kind"] == "kenlm" and card["params"]["order"] == 5
    assert all(len(entry["sha256"]) == 64 for entry in card["data"])
    assert 20 < card["metrics"]["held_out_ppl"] < 5000
    low, high = card["extra"]["cutoffs"]
    assert card["extra"]["percentiles"] == [30.0, 60.0] and 0 < low < high


def test_held_out_wikipedia_beats_the_same_words_shuffled(
    models: Path, held_out_wikipedia: list[str]
) -> None:
    pages = held_out_wikipedia[:5]
    result = stage(models).process(batch_of(pages + [shuffled_words(p, i) for i, p in enumerate(pages)]))
    ppl = np.asarray(result.table.column("ppl").to_pylist())
    real, shuffled = ppl[: len(pages)], ppl[len(pages) :]
    assert np.all(shuffled > 3 * real), (real, shuffled)


def test_buckets_split_the_reference_sample_at_its_percentiles(models: Path, shared: Path) -> None:
    card = find_model("wiki-test", models).card
    _, sample = bucket_sample(shared, [])
    model = load_kenlm(str(models / "wiki-test" / "model.bin"))
    assert card.extra["cutoffs"] == cutoffs_for(perplexities(model, sample), (30.0, 60.0))
    result = stage(models).process(batch_of(sample))
    buckets = result.table.column("ppl_bucket").to_pylist()
    share = {name: buckets.count(name) / len(buckets) for name in ("head", "middle", "tail")}
    assert abs(share["head"] - 0.3) < 0.03 and abs(share["middle"] - 0.3) < 0.03
    assert abs(share["tail"] - 0.4) < 0.03
    assert result.stats["bucket:head"] == buckets.count("head")
    assert result.drop_reason.null_count == len(sample)  # no drop configured: tag only


def test_drops_by_bucket_and_threshold_with_reasons(models: Path) -> None:
    news = [text for _, text in zip(range(40), news_texts(), strict=False)]
    scored = stage(models, cutoffs=(200.0, 400.0)).process(batch_of(news))
    ppl = scored.table.column("ppl").to_pylist()
    buckets = scored.table.column("ppl_bucket").to_pylist()
    assert all((b == "head") == (p <= 200) for p, b in zip(ppl, buckets, strict=True))
    median = float(np.median(ppl))
    dropped = stage(models, cutoffs=(200.0, 400.0), drop_buckets=["head"], max_ppl=median).process(
        batch_of(news)
    )
    for p, b, reason in zip(ppl, buckets, dropped.drop_reason.to_pylist(), strict=True):
        expected = "ppl:above_max" if p > median else "ppl:bucket_head" if b == "head" else None
        assert reason == expected


def test_empty_text_has_no_perplexity_and_is_kept(models: Path) -> None:
    result = stage(models).process(batch_of(["", None, "  \n ", "A real sentence about the city."]))
    assert result.table.column("ppl").to_pylist()[:3] == [None, None, None]
    assert result.table.column("ppl_bucket").to_pylist()[:3] == [None, None, None]
    assert result.drop_reason.to_pylist() == [None] * 4


def test_missing_model_is_one_config_line_naming_the_command(tmp_path: Path) -> None:
    raw = {
        "inputs": [{"path": "x.jsonl"}],
        "stages": [{"perplexity": {"model": "nope", "models_dir": str(tmp_path)}}],
    }
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert "curate models train-lm --name nope" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ModelMissingError, match="is not in"):
        require_model("nope", "kenlm", tmp_path)


def test_calibrate_on_own_sample_rewrites_the_cutoffs(models: Path, tmp_path: Path) -> None:
    home = tmp_path / "models"
    shutil.copytree(models / "wiki-test", home / "wiki-test")
    sample = tmp_path / "sample.jsonl"
    news = list(news_texts())
    sample.write_text("".join(json.dumps({"text": t}) + "\n" for t in news), encoding="utf-8")
    cutoffs = calibrate_lm("wiki-test", sample, home=home)
    model = load_kenlm(str(models / "wiki-test" / "model.bin"))
    assert cutoffs == cutoffs_for(perplexities(model, news), (30.0, 60.0))
    assert find_model("wiki-test", home).card.extra["bucket_sample"]["documents"] == len(news)


def test_harmful_lm_gives_low_perplexity_to_held_out_toxic_threads(
    shared: Path,
    tmp_path_factory: pytest.TempPathFactory,
    kenlm_tools: dict[str, Path],
    held_out_wikipedia: list[str],
) -> None:
    home = tmp_path_factory.mktemp("harmful")
    model = train_lm("harmful-test", corpus="harmful", order=3, home=home, log=lambda _: None)
    assert model.card.metrics["flag_auc_harmful_vs_clean"] > 0.8
    threads = [text for _, text in corpora.fourchan_threads(shared / "toxicity")]
    held_threads = [text for i, text in enumerate(threads) if i % 20 == 10][:10]
    built = get_stage("harmful_ppl")(get_stage("harmful_ppl").Params(model="harmful-test", models_dir=home))
    built.setup()
    result = built.process(batch_of(held_threads + held_out_wikipedia[:10]))
    ppl = np.asarray(result.table.column("harmful_ppl").to_pylist())
    assert np.median(ppl[: len(held_threads)]) < np.median(ppl[len(held_threads) :])
    reasons = result.drop_reason.to_pylist()
    assert reasons[: len(held_threads)].count("harmful_ppl:below") > reasons[len(held_threads) :].count(
        "harmful_ppl:below"
    )

"""Every filter stage runs in both executors with the same result (models set up once per worker/actor)."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.config import load_config
from curate.run import run_pipeline
from filters.kenlm_build import KenLMBuildError, ensure_tools
from filters.perplexity_recipe import train_lm
from filters.toxicity_recipe import train_toxicity
from tests.core.helpers import read_parts, write_config

SMALL_FASTTEXT = {"epoch": 4, "dim": 16, "bucket": 100_000}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    try:
        ensure_tools(install_packages=False, log=lambda _: None)
    except KenLMBuildError as error:
        pytest.skip(f"KenLM's lmplz cannot be built on this machine: {error}")
    home = tmp_path_factory.mktemp("executor-models")
    train_lm("wiki-exec", books_mb=0, home=home, log=lambda _: None)
    train_toxicity("toxicity-exec", hyperparams=SMALL_FASTTEXT, home=home, log=lambda _: None)
    return home


def config(folder: Path, web: Path, toxic: Path, models: Path, name: str) -> Path:
    stages = [
        {"normalize": {}},
        {"tag": {}},
        {"langid": {"langs": ["en"]}},
        {"heuristics": {"mode": "drop"}},
        {"perplexity": {"model": "wiki-exec", "models_dir": str(models)}},
        {"toxicity": {"model": "toxicity-exec", "models_dir": str(models), "max_toxicity": 0.9}},
    ]
    inputs = [
        {"path": str(web / "*.json*"), "name": "web"},
        {"path": str(toxic), "name": "toxic", "domain": "forum"},
    ]
    return write_config(
        folder, {"inputs": inputs, "stages": stages, "output": str(folder / name)}, f"{name}.yaml"
    )


def test_all_filter_stages_give_the_same_corpus_and_rejects_on_ray(
    tmp_path: Path, web: Path, shared: Path, models: Path
) -> None:
    pytest.importorskip("ray")
    toxic = shared / "toxicity" / "4chan_threads.jsonl.gz"
    local = run_pipeline(
        load_config(config(tmp_path, web, toxic, models, "local")), "local", 2, progress=False
    )
    ray = run_pipeline(load_config(config(tmp_path, web, toxic, models, "ray")), "ray", 2, progress=False)
    assert local["totals"] == ray["totals"]
    assert local["stages"] == ray["stages"]
    dropped = {stage["stage"]: stage["dropped"] for stage in local["stages"]}
    assert dropped["toxicity"].get("toxicity:above_max", 0) > 50, "the 4chan threads are toxic"
    assert sum(dropped["heuristics"].values()) > 0 and sum(dropped["langid"].values()) > 0
    for folder in ("corpus", "rejects"):
        assert read_parts(tmp_path / "ray" / folder).equals(read_parts(tmp_path / "local" / folder))
    kept = read_parts(tmp_path / "local" / "corpus")
    assert {"lang", "ppl", "ppl_bucket", "toxicity", "rule_flags"} <= set(kept.column_names)

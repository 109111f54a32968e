"""`curate mixsearch` writes a spec `curate mix` accepts; strategies compared at equal compute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bench.mixing_compare import compare, continual_problem, format_table
from bench.mixing_textdata import cached_text_shards, domain_texts, write_text_shards
from curate.errors import ConfigError
from mixers.spec import load_spec
from mixers.strategies.base import Budget, MixProblem, Objective
from mixers.strategies.baselines import Natural, Uniform
from mixers.strategies.environment import ProxyConfig, ProxyEnvironment
from mixers.strategies.regmix import RegMix
from mixers.strategies.search import mixsearch
from mixers.strategies.weights import is_distribution
from trainer.token_shards import TokenShards

TINY = ProxyConfig(d_model=32, n_layers=2, n_heads=2, seq_len=32, batch_size=8, eval_tokens=1024)
PROXY = {"d_model": 32, "n_layers": 2, "n_heads": 2, "seq_len": 32, "batch_size": 8, "eval_tokens": 1024}


@pytest.fixture(scope="module")
def shards() -> Path:
    return cached_text_shards(max_docs={"wiki": 30, "news": 60, "code": 20}, max_chars=3000)


@pytest.fixture(scope="module")
def later_news(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An extra evaluation set: news articles the training shards do not hold, same tokenizer."""
    texts = domain_texts("news", 90, 3000)[60:]
    folder = tmp_path_factory.mktemp("later-news") / "tokens"
    return write_text_shards(
        folder, [(t, "later_news") for t in texts], tokenizer_path=TokenShards(shards).tokenizer_path
    )


def write_config(tmp_path: Path, shards: Path, later_news: Path, **overrides) -> Path:
    config = {
        "tokens": str(shards),
        "eval_sets": {"later_news": str(later_news)},
        "proxy": PROXY,
        "strategy": "regmix",
        "params": {"samples": 2000, "top_k": 20},
        "objective": {"balanced": {"source": ["wiki", "news"], "target": ["later_news"], "balance": 0.5}},
        "budget": {"runs": 4, "steps": 6},
        "mixture": {"corpora": ["corpus/"], "budget": 1_000_000, "tokenizer": {"chars_per_token": 4.0}},
        "output": "mix.yaml",
        **overrides,
    }
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_mixsearch_writes_a_mixture_spec(tmp_path: Path, shards: Path, later_news: Path):
    report = mixsearch(write_config(tmp_path, shards, later_news))
    spec = load_spec(tmp_path / "mix.yaml")  # exactly what `curate mix` will read
    weights = {name: domain.weight for name, domain in spec.domains.items()}
    assert weights == pytest.approx(report["result"]["weights"], abs=1e-6)
    assert is_distribution(report["result"]["weights"], tolerance=1e-5)
    assert spec.corpora == [str((tmp_path / "corpus").resolve())] and spec.budget == 1_000_000
    check = report["check"]  # the answer vs uniform and natural on fresh paired seeds
    assert set(check["objective_per_seed"]) == {"regmix", "uniform", "natural"}
    pairs = {name: test["pairs"] for name, test in check["versus"].items()}
    assert pairs == {"vs_uniform": 3, "vs_natural": 3}
    assert all(test["verdict"] for test in check["versus"].values())
    saved = json.loads((tmp_path / "mix.search.json").read_text())
    assert saved["result"]["strategy"] == "regmix" and len(saved["result"]["report"]["runs"]) == 4
    assert all(
        set(run["bpb"]) == {"code", "news", "wiki", "later_news"} for run in saved["result"]["report"]["runs"]
    )


def test_mixsearch_user_errors_are_one_line(tmp_path: Path, shards: Path, later_news: Path):
    other_tokenizer = write_text_shards(
        tmp_path / "other" / "tokens", [(t, "news") for t in domain_texts("news", 20, 3000)], vocab_size=300
    )
    cases = [
        ({"eval_sets": {"later_news": str(other_tokenizer)}}, "another tokenizer"),
        ({"eval_sets": {"wiki": str(later_news)}}, "training domain's name"),
        ({"budget": {"runs": 4}}, "steps"),
        ({"objective": {"average": ["wiki", "maths"]}}, "unknown evaluation set"),
        ({"proxy": {"d_modle": 8}}, "d_modle"),
        ({"strategy": "oracle"}, "unknown strategy"),
        ({"extra_key": 1}, "extra_key"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=message) as caught:
            mixsearch(write_config(tmp_path, shards, later_news, **overrides))
        assert "\n" not in str(caught.value)


def test_equal_compute_comparison_in_a_continual_setting(shards: Path):
    env = ProxyEnvironment.open(shards, TINY)
    problem, start = continual_problem(
        env, {"wiki": 0.5, "news": 0.5}, ["code"], Budget(runs=3, steps=4), pretrain_steps=8, stages=1
    )
    assert problem.init_state is not None and set(start["start_bpb"]) == {"code", "news", "wiki"}
    table = compare(env, problem, [Uniform(), Natural(), RegMix(samples=2000, top_k=20)], eval_seeds=2)
    rows = table["rows"]
    assert [r["objective"] for r in rows] == sorted(r["objective"] for r in rows)
    assert {r["strategy"] for r in rows} == {"uniform", "natural", "regmix"}
    by_name = {r["strategy"]: r for r in rows}
    assert by_name["regmix"]["compute"]["proxy_runs"] == 3
    assert by_name["uniform"]["compute"]["proxy_runs"] == 0
    assert by_name["regmix"]["compute"]["proxy_tokens"] == 3 * 4 * TINY.tokens_per_step
    # every run continues from the source model, which never saw code: training on code improves it
    assert by_name["natural"]["bpb"]["code"] < start["start_bpb"]["code"]
    versus = table["versus_baselines"]
    assert "vs_uniform" not in versus["uniform"] and versus["uniform"]["vs_natural"]["pairs"] == 2
    regmix = versus["regmix"]["vs_uniform"]
    assert regmix["ratio"] == pytest.approx(by_name["regmix"]["objective"] / by_name["uniform"]["objective"])
    assert regmix["verdict"].startswith(("regmix beats", "uniform beats", "no difference", "no test"))
    assert "regmix" in format_table(table)
    json.dumps(table)  # the whole comparison is JSON
    with pytest.raises(ConfigError, match="objective"):
        compare(env, MixProblem(Objective({"maths": 1.0}), Budget(1, 4)), [Uniform()])

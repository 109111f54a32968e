"""Mixing strategies are scored on the corpus's fixed evaluation suite: every candidate of a search on the
same documents (one hash), none of which any candidate trains on; the target-small bench keeps its
structure (paired fresh seeds, paired tests computed, suite hash recorded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from bench.mixing import BenchSettings, bench_target_small
from bench.mixing_compare import compare
from bench.mixing_textdata import cached_text_mixture
from mixers.strategies.base import Budget, MixProblem, Objective
from mixers.strategies.baselines import Natural, Uniform
from mixers.strategies.environment import ProxyConfig, ProxyEnvironment, RunRequest
from mixers.strategies.parallel import Runner, run_request
from mixers.strategies.regmix import RegMix
from mixers.strategies.search import mixsearch
from trainer.tokenizer import encode_documents, load_tokenizer

DOMAINS = ("wiki", "news", "code")
TINY = ProxyConfig(d_model=32, n_layers=2, n_heads=2, seq_len=32, batch_size=8, eval_tokens=1024)
# the bench's tiny setting builds the same mixture as the fixture (news, its target, at 15 documents)
BENCH = BenchSettings(
    runs=3,
    steps=4,
    stages=2,
    eval_seeds=2,
    agent_trajectories=4,
    docs_per_domain=30,
    target_docs=15,
    proxy=TINY,
)


@pytest.fixture(scope="module")
def mixture() -> Path:
    """A natural mixture (`curate run` + `curate mix --tokens`) with its suite, built once per checkout."""
    return cached_text_mixture(
        DOMAINS, {"wiki": 30, "news": 15, "code": 30}, BENCH.max_chars, BENCH.vocab_size
    )


def _suite(mixture: Path) -> tuple[str, list[dict]]:
    manifest = json.loads((mixture / "manifest.json").read_text())
    rows = pq.read_table(mixture / manifest["eval_suite"]["path"] / "documents.parquet").to_pylist()
    return manifest["eval_suite"]["hash"], rows


def test_every_candidate_is_scored_on_the_suite_and_never_trains_on_it(mixture: Path) -> None:
    env = ProxyEnvironment.open(mixture / "tokens", TINY)
    assert ProxyEnvironment.open(mixture, TINY) is env  # the mixture folder or its tokens/: one environment
    suite_hash, rows = _suite(mixture)
    assert env.suite_hash == suite_hash and env.describe()["eval_suite"] == suite_hash
    tokenizer = load_tokenizer(env.shards.tokenizer_path)
    suite_tokens = {
        domain: [
            ids.tolist()
            for ids, _ in encode_documents(tokenizer, [r["text"] for r in rows if r["domain"] == domain])
        ]
        for domain in DOMAINS
    }
    for domain in DOMAINS:  # each domain is scored on its leading suite documents, exactly
        shards, docs = env.eval_sets[domain]
        scored = [shards.document(int(i)).tolist() for i in docs]
        assert scored and scored == suite_tokens[domain][: len(scored)]
    trained = {tuple(env.shards.document(int(i)).tolist()) for docs in env.train_docs.values() for i in docs}
    held_out = {tuple(ids) for docs in suite_tokens.values() for ids in docs}
    assert len(trained) > 3 * len(held_out) and not trained & held_out
    mixed_ids = {r["id"] for part in mixture.glob("part-*.parquet") for r in pq.read_table(part).to_pylist()}
    assert mixed_ids and not mixed_ids & {r["id"] for r in rows}
    candidates = [{"wiki": 1.0}, {"news": 0.2, "code": 0.8}, env.natural]
    requests = [RunRequest(steps=3, seed=s, schedule=(w,)) for s, w in enumerate(candidates)]
    results = Runner().map(run_request, env.spec, requests)
    assert {r.eval_suite for r in results} == {suite_hash}
    problem = MixProblem(Objective.average(["news"]), Budget(runs=3, steps=4))
    table = compare(env, problem, [Uniform(), Natural(), RegMix(samples=2000, top_k=20)], eval_seeds=2)
    assert table["eval_suite"] == suite_hash and table["scored_on"] == [suite_hash]


def test_mixsearch_on_a_mixture_records_its_suite(mixture: Path, tmp_path: Path) -> None:
    config = {
        "tokens": str(mixture),
        "proxy": {"d_model": 32, "n_layers": 2, "n_heads": 2, "seq_len": 32, "eval_tokens": 1024},
        "strategy": "regmix",
        "params": {"samples": 2000, "top_k": 20},
        "objective": {"average": ["news"]},
        "budget": {"runs": 3, "steps": 4},
        "check": {"seeds": 2},
        "mixture": {"corpora": ["corpus/"], "budget": 100_000, "tokenizer": {"chars_per_token": 4.0}},
    }
    (tmp_path / "search.yaml").write_text(yaml.safe_dump(config))
    report = mixsearch(tmp_path / "search.yaml")
    suite_hash, _ = _suite(mixture)
    saved = json.loads((tmp_path / "mix.search.json").read_text())
    assert saved["eval_suite"] == suite_hash and saved["environment"]["eval_suite"] == suite_hash
    assert report["check"]["scored_on"] == [suite_hash]
    assert all(set(run["bpb"]) == set(DOMAINS) for run in saved["result"]["report"]["runs"])


def test_target_small_bench_pairs_fresh_seeds_and_tests_them(mixture: Path, tmp_path: Path) -> None:
    figures = bench_target_small(tmp_path, seed=0, settings=BENCH, domains=DOMAINS)
    suite_hash, _ = _suite(mixture)
    assert figures["eval_suite"] == suite_hash and figures["settings"]["target"] == "news"
    result = figures["results"]["target_small"]
    assert result["eval_suite"] == suite_hash and result["objective"]["weights"] == {"news": 1.0}
    seeds = figures["evaluation"]["seeds"]
    assert len(seeds) == BENCH.eval_seeds and not set(seeds) & {0, 1}  # never a search seed
    rows = {row["strategy"]: row for row in result["rows"]}
    assert {"uniform", "natural", "regmix", "agent", "agent+online"} <= set(rows)
    assert all(len(row["objective_per_seed"]) == len(seeds) for row in rows.values())
    for label in ("regmix", "agent"):
        for base in ("uniform", "natural"):
            test = result["versus_baselines"][label][f"vs_{base}"]
            differences = np.subtract(rows[label]["objective_per_seed"], rows[base]["objective_per_seed"])
            assert test["pairs"] == len(seeds)
            assert test["difference"]["mean"] == pytest.approx(differences.mean())
            assert 0.0 < test["p_value"] <= 1.0 and test["verdict"]
    assert figures["cpu_seconds"] > 0 and len(figures["load_average"]["start"]) == 3
    saved = json.loads((tmp_path / "bench-mixing.json").read_text())
    assert saved["full"]["target_small"]["scored_on"] == [suite_hash]
    assert "p=" in (tmp_path / "bench-mixing.md").read_text()
    assert figures["environment"]["token_dir"] == str((mixture / "tokens").resolve())  # the same mixture

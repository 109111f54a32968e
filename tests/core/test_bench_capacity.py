"""`curate bench capacity`'s model on two tiny real runs of the crawl pipeline (generated corpus from
../shared/data): the measured phases add up, shuffle bytes are counted, and the model's arithmetic is
consistent (it reproduces the runs it was fitted on, its crawl figures scale with documents). No speed is
asserted: speed is for BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.capacity import CrawlShape, capacity_model, corpus_files, measure_run
from curate.errors import ConfigError


@pytest.fixture(scope="module")
def runs(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Two real runs (100 and 300 documents, shards of 50) in this process, one worker, after a first
    run that pays the imports and model loading once (the benchmark runs each size in a fresh process)."""
    work = tmp_path_factory.mktemp("bench-capacity")
    files, _ = corpus_files(300, work, shard_docs=50)
    measure_run(files[:2], work / "out", workers=1)
    return [measure_run(shards, work / "out", workers=1) for shards in (files[:2], files)]


def test_a_run_is_measured_per_phase(runs: list[dict]) -> None:
    small, large = runs
    assert (small["docs"], large["docs"]) == (100, 300) and small["shards"] == 2
    for run in runs:
        shard, glob = run["shard_phase"], run["global_phase"]
        assert glob["path"] == "duckdb" and run["dedup_input_docs"] > 0
        assert 0 < shard["cpu_s"] <= run["cpu_s"] and 0 < glob["wall_s"] < run["wall_s"]
        assert shard["wall_s"] + glob["wall_s"] <= run["wall_s"]
        assert shard["worker_peak_rss_mb"] > 0 and glob["peak_rss_mb"] > 0
        assert set(run["stage_cpu_seconds"]) == {"read", "normalize", "tag", "heuristics", "langid"}
        shuffle = run["shuffle"]
        assert shuffle["total_bytes"] == sum(shuffle["counted"].values()) > 0
        # every sketched document sends at least one bucket row per band, each carrying its signature
        assert shuffle["counted"]["bucket_rows"] > run["dedup_input_docs"] * 28 * 112 * 4


def test_the_model_reproduces_its_fit_and_scales_with_documents(runs: list[dict]) -> None:
    model = capacity_model(runs[0], runs[1:], CrawlShape(docs=1e9))
    assert model["fitted_on_docs"] == [100, 300]
    for row in model["predicted_vs_measured"]:  # the line goes through the run it was fitted on
        assert all(abs(row[name]["error_pct"]) < 1 for name in ("wall_s", "cpu_s", "shard_cpu_s"))
    costs = model["unit_costs"]
    assert costs["shard_cpu_s_per_mb"] > 0 and costs["text_kb_per_doc"] > 0
    crawl = model["crawl"]
    three = capacity_model(runs[0], runs[1:], CrawlShape(docs=3e9))["crawl"]
    assert three["shuffle_bytes_total"] == pytest.approx(3 * crawl["shuffle_bytes_total"], rel=1e-6)
    assert three["shard_phase_core_hours"] == pytest.approx(3 * crawl["shard_phase_core_hours"], abs=2)
    assert three["nodes_ray_global_assumed"] >= crawl["nodes_ray_global_assumed"] >= 1
    fewer_cores = capacity_model(runs[0], runs[1:], CrawlShape(docs=3e9, node_cores=8))["crawl"]
    assert fewer_cores["nodes_ray_global_assumed"] >= three["nodes_ray_global_assumed"]


def test_sizes_must_exceed_the_calibration_run(runs: list[dict]) -> None:
    with pytest.raises(ConfigError, match="above the calibration run's 300 documents"):
        capacity_model(runs[1], runs[:1], CrawlShape())

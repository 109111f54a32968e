"""`curate bench dedup --global-phase` on a tiny generated corpus: the real shard phase builds the chunks
once, each size runs the real `run_dedup` in a fresh process on the first chunks, and the figures the
issue names (global_s_per_million, peak RSS) come back per size."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.dedup_corpus import DedupCorpusSpec
from bench.dedup_global import bench_global_phase, build_chunk
from curate.errors import ConfigError

SPEC = DedupCorpusSpec(docs=400, dup_rate=0.2, passage_min=100, passage_max=300, shard_docs=100)


def test_global_phase_per_size_on_cached_chunks(shared: Path, tmp_path: Path) -> None:
    result = bench_global_phase([200, 400], workers=1, cache_dir=tmp_path, chunk_docs=200, spec=SPEC)
    small, large = result["runs"]
    assert (small["docs"], large["docs"]) == (200, 400)
    for run in (small, large):
        assert run["global_s_per_million"] > 0 and run["cpu_s"] > 0
        assert run["peak_rss_mb"] >= run["rss_before_mb"] > 0
        assert set(run["steps_s"]) >= {"load_docs", "candidate_pairs", "verified_pairs", "choose_keepers"}
    assert large["dedup"]["exact_duplicate"] + large["dedup"]["near_duplicate"] > 0  # the copies were found
    assert small["ratio_vs_smallest"] == 1.0
    chunks = sorted((tmp_path / "global").glob("*/chunk-*/chunk.json"))
    assert len(chunks) == 2
    built = [c.stat().st_mtime_ns for c in chunks]
    assert build_chunk([], 0, chunks[0].parent, {}, 1) == chunks[0].parent  # a built chunk is kept as is
    assert [c.stat().st_mtime_ns for c in chunks] == built
    assert not list((tmp_path / "work").iterdir())  # each size's output folder is removed


def test_sizes_must_be_whole_chunks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="multiples of 200"):
        bench_global_phase([300], cache_dir=tmp_path, chunk_docs=200, spec=SPEC)

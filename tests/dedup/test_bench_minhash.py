"""The benchmark runs end to end and reports comparable figures (its numbers are not checked here)."""

from __future__ import annotations

from bench.minhash import bench_minhash, python_shingles
from curate.textsources import stdlib_sources


def test_bench_minhash_reports_every_peer_it_can_import() -> None:
    texts = [text for _, text in stdlib_sources(limit=8)]
    result = bench_minhash(texts, repeats=1)
    assert result["docs"] == 8 and result["mb"] > 0
    assert result["ours"]["mb_per_s"] > 0 and result["ours"]["docs_per_s"] > 0
    for peer in ("rensa", "datasketch"):
        if result[peer] is not None:
            assert result[f"ratio_vs_{peer}"] > 0


def test_peer_shingles_follow_the_same_recipe() -> None:
    assert python_shingles("One, two; three four five six!") == [
        "one two three four five",
        "two three four five six",
    ]
    assert python_shingles("just two") == ["just two"]
    assert python_shingles("...") == []

"""`curate bench filtering` on a tiny budget: the figures' shape, and the fairness the comparison rests on
(same trained tokens, same tokenizer, no held-out document in either mixture)."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench.filtering import ARMS, bench_filtering, format_table
from bench.filtering_pool import FilterModels, is_held_out


def test_both_arms_train_the_same_tokens_with_one_tokenizer(
    small_quality_model: FilterModels, tmp_path: Path
) -> None:
    figures = bench_filtering(
        tmp_path, tokens=4096, seeds=(0,), keep=0.5, vocab_size=512, batch_size=4, seq_len=64,
        max_docs=80, eval_chars=4000, models=small_quality_model,
    )  # fmt: skip
    assert set(figures["bpb"]) == {
        "wiki_html",
        "wiki_html_refs",
        "enwiki",
        "wikitext2",
        "books",
        "web_heldout",
    }
    runs = figures["runs"]
    assert {r["tokens_trained"] for arm in ARMS for r in runs[arm]} == {figures["train_tokens"]} == {4096}
    assert {r["tokenizer_sha256"] for arm in ARMS for r in runs[arm]} == {figures["tokenizer"]["sha256"]}
    for row in figures["bpb"].values():
        assert all(math.isfinite(row[arm]["mean"]) for arm in ARMS)
        assert row["delta"] == pytest.approx(row["filtered"]["mean"] - row["unfiltered"]["mean"])
    for arm in ARMS:
        mixture = figures["mixtures"][arm][0]
        assert mixture["tokens"] >= figures["mixture_tokens"] and mixture["documents"] > 0
        parts = sorted((tmp_path / "mixes" / f"{arm}-s0").glob("part-*.parquet"))
        ids = [i for part in parts for i in pq.read_table(part, columns=["id"]).column("id").to_pylist()]
        assert not any(is_held_out(i) for i in ids)  # the web evaluation slice is in neither mixture
    assert (
        figures["mixtures"]["filtered"][0]["mean_quality"]
        > figures["mixtures"]["unfiltered"][0]["mean_quality"]
    )
    assert "web_heldout" in format_table(figures)

"""`curate bench filters` on a tiny JSONL shard built here from text that gensim's wheel ships.

Small and fast: an empty models home, so the model stages are skipped (and said to be), and no DataTrove.
"""

from __future__ import annotations

import gzip
import json
from itertools import islice
from pathlib import Path

import pytest

from bench.filter_stages import MODEL_STAGES, bench_filters, format_table, input_files, read_corpus
from curate.errors import ConfigError
from curate.textsources import news_texts, wikipedia_pages


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gzip JSONL shard of 20 Wikipedia pages and 20 news texts, plus one unreadable line."""
    path = tmp_path_factory.mktemp("bench") / "tiny.jsonl.gz"
    records = [
        {"id": f"wiki/{title}", "text": text, "url": f"https://en.wikipedia.org/wiki/{title}"}
        for title, text in islice(wikipedia_pages(), 20)
    ]
    records += [{"id": f"news/{i}", "text": text} for i, text in enumerate(islice(news_texts(), 20))]
    lines = [json.dumps(record) for record in records] + ["{not json"]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def test_figures_for_every_stage_and_the_chain_from_any_jsonl_shard(shard: Path, tmp_path: Path) -> None:
    result = bench_filters(shard, models_home=tmp_path / "no-models", datatrove=False)

    assert result["corpus"]["docs"] == 40 and result["corpus"]["unreadable_or_empty"] == 1
    assert result["heuristics_mb_s_per_core"] > 0 and result["annotate_mb_s_per_core"] > 0
    assert result["heuristics_docs_s_per_core"] > 0 and result["annotate_docs_s_per_core"] > 0
    assert {"normalize", "tag", "heuristics", "langid"} <= set(result["stages"])
    assert all(figures["mb_s_per_core"] > 0 for figures in result["stages"].values())
    # untrained models are skipped with the command that trains them, and the chain says it is partial
    assert {"perplexity", "harmful_ppl", "quality"} <= set(result["skipped"])
    assert "curate models train-lm" in result["skipped"]["perplexity"]
    assert result["annotate_complete"] is False
    assert set(result["models"]) == set(result["stages"]) & MODEL_STAGES  # toxicity's word-list fallback
    assert result["chain"]["stages"] == list(result["stages"])
    assert "datatrove" not in result["peer"]
    table = format_table(result)
    assert "annotate chain" in table and "skipped" in table


def test_a_folder_is_read_shard_by_shard_and_mb_caps_a_prefix(shard: Path) -> None:
    assert input_files(shard.parent) == [shard]
    batches, _ = read_corpus([shard], max_mb=0.05)
    assert 0 < sum(b.num_rows for b in batches) < 40
    with pytest.raises(ConfigError, match="does not exist"):
        input_files(shard.parent / "missing.jsonl")

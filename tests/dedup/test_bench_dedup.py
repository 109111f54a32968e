"""`curate bench dedup` on a tiny JSONL shard built here from the news texts in gensim's wheel: the JSON
carries the figures the issue names, as positive numbers; inputs are found by path, glob or folder; the
generated corpus is deterministic and has the requested share of copies."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench.dedup_corpus import DedupCorpusSpec, expand_inputs, generate_documents
from bench.dedup_scale import bench_dedup
from curate.errors import ConfigError
from curate.textsources import news_texts


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """News texts (no ids, as many shards in the wild) plus 20 verbatim copies: real duplicates to find."""
    texts = list(news_texts())
    path = tmp_path_factory.mktemp("bench-dedup") / "news.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"text": t}) + b"\n" for t in texts + texts[:20]))
    return path


def test_bench_dedup_on_a_jsonl_shard_reports_the_required_figures(shard: Path, tmp_path: Path) -> None:
    result = bench_dedup(
        inputs=[str(shard)], workers=1, peer_docs=0, signature_mb=0.2, repeats=1, cache_dir=tmp_path
    )
    for key in ("signature_mb_s_per_core", "paragraph_mchars_s_per_core", "end_to_end_docs_s", "peak_rss_mb"):
        assert isinstance(result[key], float) and result[key] > 0, key
    (run,) = result["runs"]
    assert run["docs"] == len(list(news_texts())) + 20 == result["docs"]
    assert run["duplicates"] >= 20  # the copies, found by the real dedup phase
    assert run["dedup_phase"]["peak_rss_mb"] > 0 and run["cpu_s"] > 0
    assert result["peak_rss_mb_per_million_docs"] > result["peak_rss_mb"]
    assert result["peers_end_to_end"]["docs"] == 0  # --peer-docs 0: no peer runs
    # datasketch is a dependency, so the ratio is always measured; how fast is for BENCHMARKS.md, not tests
    assert result["ratios"]["signature_vs_datasketch"] > 0
    assert not (tmp_path / "work" / "run").exists()  # outputs are removed after measuring


def test_inputs_by_file_glob_and_folder(shard: Path) -> None:
    folder = shard.parent
    assert expand_inputs([str(shard)]) == [shard.resolve()]
    assert expand_inputs([str(folder / "*.jsonl"), str(folder)]) == [shard.resolve()]
    with pytest.raises(ConfigError, match="matches no file"):
        expand_inputs([str(folder / "missing-*.jsonl")])


def test_generated_corpus_is_deterministic_with_copies_of_earlier_documents() -> None:
    books = ["\n\n".join(list(news_texts())[i::3]) for i in range(3)]
    spec = DedupCorpusSpec(docs=600, dup_rate=0.2, passage_min=200, passage_max=600)
    docs = list(generate_documents(books, spec))
    assert docs == list(generate_documents(books, spec))
    assert len(docs) == 600 and len({d["id"] for d in docs}) == 600
    copies = [d for d in docs if "copy_of" in d]
    assert 0.12 < len(copies) / len(docs) < 0.28
    seen: set[str] = set()
    for doc in docs:
        assert doc.get("copy_of", next(iter(seen), None)) in seen or not seen
        seen.add(doc["id"])

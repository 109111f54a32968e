"""Global dedup in `curate run`, on real text: exact and near duplicates across shards, which copy is
kept, accounting, and the same corpus on the local and the Ray executor.

Documents are real: Project Gutenberg passages and web shards from ../shared/data (the tests skip when
it is absent) and the news texts in gensim's wheel.
"""

from __future__ import annotations

import re
from itertools import islice
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.neardup_corpus import CorpusSpec, build_corpus, similar_pairs
from curate.config import parse_config, resolve_paths
from curate.jsonl_files import write_jsonl
from curate.run import run_pipeline
from curate.textsources import book_passages, news_texts
from tests.core.helpers import read_parts


def run(inputs: str, out: Path, dedup: dict[str, Any], executor: str = "local", workers: int = 1) -> dict:
    raw = {
        "inputs": [{"path": inputs, "name": "web"}],
        "stages": [{"normalize": {}}, {"tag": {}}],
        "dedup": dedup,
        "batch_docs": 40,
    }
    config = resolve_paths(parse_config(raw), out.parent, str(out))
    return run_pipeline(config, executor, workers, progress=False)  # type: ignore[arg-type]


def dedup_rejects(out: Path) -> pa.Table:
    files = sorted((out / "rejects").glob("dedup-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]).sort_by("id") if files else pa.table({})


def words_slice(text: str, start: float, end: float) -> str:
    """The words of `text` between two shares of its length (whole words, original spacing kept)."""
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    lo, hi = int(len(spans) * start), int(len(spans) * end)
    return text[spans[lo][0] : spans[hi - 1][1]]


@pytest.fixture(scope="module")
def pages(shared: Path) -> list[str]:
    """Passages of ~3,000 characters from the first Project Gutenberg books, licence text left out."""
    passages = islice(book_passages(shared / "domains" / "books", 3000), 400)
    return [t for _, t in passages if len(t.split()) >= 300 and "gutenberg" not in t.lower()][:60]


def test_exact_duplicates_across_shards_are_removed_with_reason_and_kept_id(
    tmp_path: Path, pages: list[str]
) -> None:
    """Copies in another shard (verbatim, or only upper-cased) are exact duplicates of the older original."""
    shards = tmp_path / "shards"
    shards.mkdir()
    originals = [
        {"id": f"a{n}", "text": t, "crawl_date": "2020-01-01T00:00:00Z"} for n, t in enumerate(pages[:30])
    ]
    copies = [
        {"id": f"b{n}", "text": t if n % 2 else t.upper(), "crawl_date": "2023-06-01T00:00:00Z"}
        for n, t in enumerate(pages[:10])
    ]
    news = [{"id": f"n{n}", "text": t} for n, t in enumerate(list(news_texts())[:20])]
    write_jsonl(shards / "a.jsonl.gz", originals)
    write_jsonl(shards / "b.jsonl.gz", copies + news)
    out = tmp_path / "out"
    manifest = run(str(shards / "*.jsonl.gz"), out, {})

    assert manifest["totals"]["duplicates"] == 10
    assert manifest["dedup"]["exact_duplicate"] == 10 and manifest["dedup"]["near_duplicate"] == 0
    rejects = dedup_rejects(out).to_pylist()
    assert [r["id"] for r in rejects] == sorted(f"b{n}" for n in range(10))
    for row in rejects:
        kept = "a" + row["id"][1:]
        assert row["reject_reason"] == "exact_duplicate"
        assert row["reject_stage"] == "dedup"
        assert row["reject_detail"] == f"duplicate of {kept} (similarity 1)"
        assert row["dup_cluster"] == kept
        assert row["source"] == "web/b.jsonl.gz"
    corpus = {r["id"]: r for r in read_parts(out / "corpus").to_pylist()}
    assert len(corpus) == 30 + 20
    assert all(corpus[f"a{n}"]["dup_cluster"] == f"a{n}" for n in range(10))  # keepers name their cluster
    assert all(corpus[f"a{n}"]["dup_cluster"] is None for n in range(10, 30))
    assert all(corpus[f"n{n}"]["dup_cluster"] is None for n in range(20))
    funnel = {stage["stage"]: stage for stage in manifest["stages"]}
    assert funnel["dedup"]["in"] == 60 and funnel["dedup"]["out"] == 50
    assert funnel["dedup"]["dropped"] == {"exact_duplicate": 10}


def test_edited_copies_in_other_shards_are_clustered_and_a_chain_does_not_remove_the_far_end(
    tmp_path: Path, pages: list[str]
) -> None:
    """A; B = A without its last fifth (Jaccard ~0.8 to A); C = B without its first fifth (~0.8 to B,
    ~0.6 to A). At threshold 0.7 B is a near duplicate of A, and C is kept: A~B and B~C do not make C a
    copy of A. Each in its own shard, with unrelated pages around them."""
    shards = tmp_path / "shards"
    shards.mkdir()
    a = pages[0]
    b = words_slice(a, 0.0, 0.8)
    c = words_slice(b, 0.2, 1.0)
    for name, doc_id, text, others in (
        ("1", "A", a, pages[1:5]),
        ("2", "B", b, pages[5:9]),
        ("3", "C", c, []),
    ):
        rows = [{"id": doc_id, "text": text}] + [
            {"id": f"{name}-{n}", "text": t} for n, t in enumerate(others)
        ]
        write_jsonl(shards / f"shard{name}.jsonl.gz", rows)
    out = tmp_path / "out"
    manifest = run(str(shards / "*.jsonl.gz"), out, {"threshold": 0.7, "verify": "exact"})

    rejects = dedup_rejects(out).to_pylist()
    assert [(r["id"], r["reject_reason"], r["dup_cluster"]) for r in rejects] == [
        ("B", "near_duplicate", "A")
    ]
    similarity = float(
        re.fullmatch(r"duplicate of A \(similarity ([0-9.]+)\)", rejects[0]["reject_detail"])[1]
    )
    i, j, s = similar_pairs([a, b, c], floor=0.0)
    jaccard = dict(zip(zip(i.tolist(), j.tolist(), strict=True), s.tolist(), strict=True))
    assert similarity == pytest.approx(jaccard[(0, 1)], abs=1e-3)  # exact Jaccard to the keeper itself
    assert jaccard[(0, 1)] >= 0.7 and jaccard[(1, 2)] >= 0.7 and jaccard[(0, 2)] < 0.7
    corpus = {r["id"]: r["dup_cluster"] for r in read_parts(out / "corpus").to_pylist()}
    assert corpus["A"] == "A" and "C" in corpus and corpus["C"] is None
    assert manifest["totals"]["duplicates"] == 1


@pytest.fixture(scope="module")
def neardup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """About 470 real documents (web, news, book passages), a third with edited copies, in 4 shards."""
    spec = CorpusSpec(originals=300, shards=4, seed=3, sources=("web", "news", "books"))
    corpus = build_corpus(tmp_path_factory.mktemp("neardup"), spec)
    return corpus.folder, corpus.documents_by_id()


@pytest.mark.parametrize("verify", ["exact", "signature"])
def test_near_duplicate_corpus_clusters_edited_copies_across_shards(
    tmp_path: Path, neardup: tuple[Path, dict[str, str]], verify: str
) -> None:
    folder, texts = neardup
    out = tmp_path / "out"
    threshold = 0.8
    manifest = run(str(folder / "shard-*.jsonl.gz"), out, {"threshold": threshold, "verify": verify})

    ids = sorted(texts)
    i, j, s = similar_pairs([texts[k] for k in ids], floor=0.5)
    jaccard = {(ids[x], ids[y]): v for x, y, v in zip(i.tolist(), j.tolist(), s.tolist(), strict=True)}
    truth = [pair for pair, v in jaccard.items() if v >= threshold]
    assert len(truth) >= 100
    con = duckdb.connect()
    removed = con.execute(
        f"SELECT id, dup_cluster, source, reject_reason FROM read_parquet('{out}/rejects/dedup-*.parquet')"
    ).fetchall()
    kept = con.execute(f"SELECT id, source FROM read_parquet('{out}/corpus/*/*.parquet')").fetchall()
    source_of = {doc_id: source for doc_id, source in kept}
    assert len(removed) == manifest["totals"]["duplicates"] > 50
    assert {r[3] for r in removed} == {"near_duplicate", "exact_duplicate"}
    assert any(source_of[cluster] != source for _, cluster, source, _ in removed)  # across shards
    gone = {r[0] for r in removed}
    close = [jaccard.get((min(d, k), max(d, k)), 0.0) >= threshold for d, k, _, _ in removed]
    both_kept = [pair for pair in truth if pair[0] not in gone and pair[1] not in gone]
    if verify == "exact":  # every reject is verified against its keeper's own text
        assert all(close)
        assert len(both_kept) <= 0.01 * len(truth)
    else:  # a 112-slot signature estimates Jaccard to about +-0.04
        assert sum(close) >= 0.9 * len(close)
        assert len(both_kept) <= 0.05 * len(truth)


def test_accounting_balances_with_duplicates_and_bad_records(tmp_path: Path, pages: list[str]) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    write_jsonl(shards / "a.jsonl.gz", [{"id": f"a{n}", "text": t} for n, t in enumerate(pages[:12])])
    lines = [{"id": f"b{n}", "text": t} for n, t in enumerate(pages[:6])]
    lines += [{"id": f"c{n}", "text": words_slice(t, 0.0, 0.9)} for n, t in enumerate(pages[6:12])]
    lines += [{"id": "empty", "text": "   "}] + [
        {"id": f"x{n}", "text": t} for n, t in enumerate(pages[12:14])
    ]
    write_jsonl(shards / "b.jsonl.gz", lines)
    with open(shards / "c.jsonl", "w", encoding="utf-8") as handle:
        handle.write(
            '{"id": "broken", "text": "unterminated\n' + '{"id": "ok", "text": "' + "word " * 40 + '"}\n'
        )
    out = tmp_path / "out"
    manifest = run(str(shards / "*.jsonl*"), out, {})

    totals = manifest["totals"]
    assert totals["read"] == totals["kept"] + totals["rejected"] + totals["duplicates"]
    assert totals["duplicates"] == 12 and totals["rejected"] >= 2
    corpus = read_parts(out / "corpus")
    rejects = read_parts(out / "rejects")
    assert corpus.num_rows == totals["kept"]
    assert rejects.num_rows == totals["rejected"] + totals["duplicates"]
    assert sorted(manifest["files"]) == sorted(
        p.relative_to(out).as_posix()
        for folder in ("corpus", "rejects", "_dedup")
        for p in (out / folder).rglob("*.parquet")
    )
    stages = {s["stage"]: s for s in manifest["stages"]}
    assert stages["dedup"]["in"] - stages["dedup"]["out"] == totals["duplicates"]
    reasons = rejects.column("reject_reason").to_pylist()
    assert reasons.count("exact_duplicate") + reasons.count("near_duplicate") == 12
    assert len(set(corpus.column("id").to_pylist()) & set(rejects.column("id").to_pylist())) == 0


def test_local_and_ray_executors_give_the_same_corpus_with_dedup(
    tmp_path: Path, neardup: tuple[Path, dict[str, str]]
) -> None:
    pytest.importorskip("ray")
    folder, _ = neardup
    inputs = str(folder / "shard-*.jsonl.gz")
    local = run(inputs, tmp_path / "local", {"verify": "exact"}, "local", 1)
    ray = run(inputs, tmp_path / "ray", {"verify": "exact"}, "ray", 1)  # ~30 s: Ray start + shuffle
    assert ray["executor"] == "ray"
    assert ray["totals"] == local["totals"]
    assert local["totals"]["duplicates"] > 50
    for key in ("candidate_pairs", "verified_pairs", "clusters", "exact_duplicate", "near_duplicate"):
        assert ray["dedup"][key] == local["dedup"][key], key
    assert read_parts(tmp_path / "ray" / "corpus").equals(read_parts(tmp_path / "local" / "corpus"))
    assert read_parts(tmp_path / "ray" / "rejects").equals(read_parts(tmp_path / "local" / "rejects"))


def test_dedup_without_a_tag_stage_uses_the_unassigned_partition(tmp_path: Path) -> None:
    """Documents with no domain are written to domain=unassigned; the dedup phase must find them there."""
    from curate.config import parse_config, resolve_paths
    from curate.jsonl_files import write_jsonl
    from curate.run import run_pipeline
    from curate.textsources import news_texts

    texts = list(news_texts())[:60]
    write_jsonl(tmp_path / "a.jsonl.gz", ({"text": t} for t in texts))
    write_jsonl(tmp_path / "b.jsonl.gz", ({"text": t} for t in texts[:20]))
    raw = {"inputs": [{"path": str(tmp_path / "*.jsonl.gz")}], "stages": [{"normalize": {}}], "dedup": {}}
    manifest = run_pipeline(resolve_paths(parse_config(raw), tmp_path, str(tmp_path / "out")), progress=False)
    assert manifest["totals"]["duplicates"] >= 20
    assert set(manifest["domains"]) == {"unassigned"}

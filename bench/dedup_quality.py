"""Dedup quality: pair precision and recall of the real pipeline against exact-Jaccard ground truth.

The corpus is :mod:`bench.neardup_corpus` (real documents plus edited copies spread over shards).
The pipeline (``normalize``, ``tag``, ``dedup:``) runs on it once per (verify mode, threshold), exactly as
``curate run`` would. Then, on the texts as the pipeline kept them:

- **truth** at threshold t: every pair of documents whose word 5-gram sets have exact Jaccard >= t,
  over ALL pairs of the corpus (not only the generated families: real text has duplicates of its own);
- **predicted**: every pair of documents in the same dup cluster (``dup_cluster`` of the corpus and of
  the dedup rejects);
- pair precision = |predicted & truth| / |predicted|, recall = |predicted & truth| / |truth|.

"Similar" is not transitive (A~B and B~C with A, C apart), so no partition into clusters scores 1 and
1 on the pair metric; ``pair_metric_ceilings`` gives the scores of two clusterings of the exact truth
graph itself, as the reachable range on this corpus. Two decision-level figures say what a user gets:
``removal_precision``, the share of removed documents whose exact Jaccard with the document kept in
their place is >= t, and ``dedup_recall``, the share of truth pairs not left with both copies kept.

Timing: the dedup phase runs from the last shard's completion record to ``_state/dedup/result.json``
(file times), so it is measured inside the real ``run_pipeline`` without hooks (wall clock, so it
suffers on a busy machine). ``dedup_cpu_seconds`` is the run's CPU time minus that of the same run
without ``dedup:`` (per-shard sketches + global phase; with one worker everything runs in-process), and
``dedup_docs_per_cpu_s`` divides the documents by it: the figure that holds up under contention.
"""

from __future__ import annotations

import resource
import shutil
import time
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from bench.machine import machine, peak_rss_mb
from bench.neardup_corpus import Corpus, CorpusSpec, build_corpus, similar_pairs
from curate.config import parse_config, resolve_paths
from curate.errors import ConfigError
from curate.run import run_pipeline
from curate.textsources import shared_data_dir

BENCH_CACHE = Path(".cache/bench")
_BINS = (0.0, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)


def bench_dedup_quality(
    cache_dir: Path = BENCH_CACHE,
    originals: int = 6000,
    shards: int = 8,
    seed: int = 0,
    thresholds: Sequence[float] = (0.7, 0.8),
    verify_modes: Sequence[str] = ("signature", "exact"),
    workers: int = 1,
    dedup: dict[str, Any] | None = None,
    keep_outputs: bool = False,
) -> dict[str, Any]:
    """Run the pipeline with dedup on the near-dup corpus for every verify mode and threshold.

    ``dedup`` adds settings to every run's `dedup:` section (e.g. ``{"bands": 28}``); threshold and
    verify come from the loops. Returns JSON-ready figures: per run precision, recall, removal
    precision, recall by Jaccard bin, the dedup phase's docs/s, and the machine.
    """
    if shared_data_dir() is None:
        raise ConfigError("the dedup quality benchmark needs ../shared/data (or CURATE_SHARED_DATA)")
    cache_dir = cache_dir.resolve()
    corpus = build_corpus(cache_dir, CorpusSpec(originals=originals, shards=shards, seed=seed))
    work = (cache_dir / f"dedup-quality-{corpus.spec.key()}").resolve()
    shutil.rmtree(work, ignore_errors=True)
    try:
        baseline = _run(corpus, work / "no-dedup", None, workers)
        ids, texts = _texts(work / "no-dedup")
        started = time.perf_counter()
        i, j, similarity = similar_pairs(texts, floor=min(0.5, *thresholds), ngram=corpus.spec.ngram)
        truth_seconds = time.perf_counter() - started
        jaccard = {(ids[a], ids[b]): float(s) for a, b, s in zip(i, j, similarity, strict=True)}
        lengths = {doc_id: len(text) for doc_id, text in zip(ids, texts, strict=True)}
        ceilings = {f"{t}": pair_ceilings(jaccard, lengths, t) for t in thresholds}
        runs = {}
        for verify in verify_modes:
            for threshold in thresholds:
                settings = {**(dedup or {}), "threshold": threshold, "verify": verify}
                out = work / f"{verify}-{threshold}"
                manifest = _run(corpus, out, settings, workers)
                figures = score(_clusters(out), jaccard, threshold)
                figures.update(_timing(out, manifest, baseline))
                runs[f"{verify}@{threshold}"] = {"dedup": manifest["config"]["dedup"], **figures}
    finally:
        if not keep_outputs:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "machine": machine(),
        "corpus": {
            "folder": str(corpus.folder),
            "documents": corpus.documents,
            "derived": corpus.derived,
            "shards": len(corpus.shards),
            "text_mb": round(baseline["totals"]["text_bytes"] / 1e6, 1),
            "pairs_jaccard_ge_0.5": len(jaccard),
            "truth_seconds": round(truth_seconds, 2),
        },
        "workers": workers,
        "pair_metric_ceilings": ceilings,
        "baseline_seconds": baseline["wall_seconds"],
        "baseline_cpu_seconds": round(baseline["bench_cpu_seconds"], 3),
        "runs": runs,
        "peak_rss_mb": peak_rss_mb(),
    }


def _run(corpus: Corpus, out: Path, dedup: dict[str, Any] | None, workers: int) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "inputs": [{"path": str(corpus.folder / "shard-*.jsonl.gz"), "name": "neardup"}],
        "stages": [{"normalize": {}}, {"tag": {}}],
    }
    if dedup is not None:
        raw["dedup"] = dedup
    config = resolve_paths(parse_config(raw, "bench"), corpus.folder, str(out))
    cpu = _cpu_seconds()
    manifest = run_pipeline(config, "local", workers, progress=False)
    manifest["bench_cpu_seconds"] = _cpu_seconds() - cpu
    return manifest


def _cpu_seconds() -> float:
    """User + system CPU of this process (DuckDB's threads included) and of finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _quiet_duckdb() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con


def _texts(out: Path) -> tuple[list[str], list[str]]:
    """Ids and texts of every kept document, in id order (the run without dedup keeps them all)."""
    rows = (
        _quiet_duckdb()
        .execute(f"SELECT id, text FROM read_parquet('{out}/corpus/*/*.parquet') ORDER BY id")
        .fetchall()
    )
    return [r[0] for r in rows], [r[1] for r in rows]


def _clusters(out: Path) -> dict[str, list[tuple[str, bool]]]:
    """cluster id -> [(document id, kept?)] from the corpus and the dedup rejects."""
    con = _quiet_duckdb()
    rows = con.execute(
        f"SELECT dup_cluster, id, true FROM read_parquet('{out}/corpus/*/*.parquet') "
        "WHERE dup_cluster IS NOT NULL UNION ALL "
        f"SELECT dup_cluster, id, false FROM read_parquet('{out}/rejects/dedup-*.parquet') "
        "ORDER BY 1, 2"
    ).fetchall()
    clusters: dict[str, list[tuple[str, bool]]] = {}
    for cluster, doc_id, kept in rows:
        clusters.setdefault(cluster, []).append((doc_id, kept))
    return clusters


def score(
    clusters: dict[str, list[tuple[str, bool]]], jaccard: dict[tuple[str, str], float], threshold: float
) -> dict[str, Any]:
    """Pair precision/recall of clusters against exact Jaccard (pairs keyed (smaller id, larger id))."""
    truth = {pair for pair, s in jaccard.items() if s >= threshold}
    predicted = set()
    removed = set()
    removal_ok = 0
    for members in clusters.values():
        ids = sorted(doc_id for doc_id, _ in members)
        predicted.update(combinations(ids, 2))
        keeper = [doc_id for doc_id, kept in members if kept]
        for doc_id, kept in members:
            if not kept:
                removed.add(doc_id)
                pair = (min(doc_id, keeper[0]), max(doc_id, keeper[0])) if keeper else None
                removal_ok += jaccard.get(pair, 0.0) >= threshold  # type: ignore[arg-type]
    hits = len(predicted & truth)
    both_kept = sum(a not in removed and b not in removed for a, b in truth)
    false_positive = [jaccard.get(pair, 0.0) for pair in predicted - truth]
    missed = [jaccard[pair] for pair in truth - predicted]
    return {
        "threshold": threshold,
        "truth_pairs": len(truth),
        "predicted_pairs": len(predicted),
        "precision": round(hits / len(predicted), 4) if predicted else 1.0,
        "recall": round(hits / len(truth), 4) if truth else 1.0,
        "removed": len(removed),
        "removal_precision": round(removal_ok / len(removed), 4) if removed else 1.0,
        "truth_pairs_both_kept": both_kept,
        "dedup_recall": round(1 - both_kept / len(truth), 4) if truth else 1.0,
        "clusters": len(clusters),
        "false_positive_jaccard": _histogram(false_positive),
        "missed_jaccard": _histogram(missed),
    }


def pair_ceilings(
    jaccard: dict[tuple[str, str], float], lengths: dict[str, int], threshold: float
) -> dict[str, dict[str, float]]:
    """Pair precision/recall of two clusterings of the TRUTH graph itself (every pair >= threshold known
    exactly, no sampling): its connected components, and greedy keepers (longest first, each taking
    its unassigned neighbours). "Similar" is not transitive, so no partition scores 1/1; these show
    how far the pair metric can go on this corpus for each kind of clustering."""
    truth = [pair for pair, s in jaccard.items() if s >= threshold]
    neighbours: dict[str, list[str]] = {}
    for a, b in truth:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    component: dict[str, str] = {}
    for start in sorted(neighbours):
        if start in component:
            continue
        stack = [start]
        component[start] = start
        while stack:
            for other in neighbours[stack.pop()]:
                if other not in component:
                    component[other] = start
                    stack.append(other)
    keeper: dict[str, str] = {}
    for doc_id in sorted(neighbours, key=lambda d: (-lengths[d], d)):
        if doc_id not in keeper:
            keeper[doc_id] = doc_id
            for other in neighbours[doc_id]:
                keeper.setdefault(other, doc_id)
    return {
        "components_of_truth": _pair_scores(component, set(truth)),
        "greedy_keepers_on_truth": _pair_scores(keeper, set(truth)),
    }


def _pair_scores(label: dict[str, str], truth: set[tuple[str, str]]) -> dict[str, float]:
    groups: dict[str, list[str]] = {}
    for doc_id, group in label.items():
        groups.setdefault(group, []).append(doc_id)
    predicted = {pair for members in groups.values() for pair in combinations(sorted(members), 2)}
    hits = len(predicted & truth)
    return {
        "precision": round(hits / len(predicted), 4) if predicted else 1.0,
        "recall": round(hits / len(truth), 4) if truth else 1.0,
    }


def _histogram(values: list[float]) -> dict[str, int]:
    counts, _ = np.histogram(values, bins=_BINS)
    return {f"{lo:.2f}-{hi:.2f}": int(c) for lo, hi, c in zip(_BINS, _BINS[1:], counts, strict=False) if c}


def _timing(out: Path, manifest: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    shards_done = max(p.stat().st_mtime_ns for p in (out / "_state" / "shards").glob("*.json"))
    phase = ((out / "_state" / "dedup" / "result.json").stat().st_mtime_ns - shards_done) / 1e9
    docs = manifest["dedup"]["documents"]
    overhead = manifest["wall_seconds"] - baseline["wall_seconds"]
    cpu_overhead = manifest["bench_cpu_seconds"] - baseline["bench_cpu_seconds"]
    return {
        "duplicates": manifest["totals"]["duplicates"],
        "candidate_pairs": manifest["dedup"]["candidate_pairs"],
        "verified_pairs": manifest["dedup"]["verified_pairs"],
        "dedup_phase_seconds": round(phase, 3),
        "dedup_phase_docs_s": round(docs / phase, 1) if phase > 0 else None,
        "wall_seconds": manifest["wall_seconds"],
        "end_to_end_overhead_seconds": round(overhead, 3),
        "cpu_seconds": round(manifest["bench_cpu_seconds"], 3),
        "dedup_cpu_seconds": round(cpu_overhead, 3),
        "dedup_docs_per_cpu_s": round(docs / cpu_overhead, 1) if cpu_overhead > 0 else None,
    }

"""`curate bench dedup`: signature MB/s per core, end-to-end docs/s and peak RSS of the dedup pipeline,
with datasketch, rensa and DataTrove measured in the same command and given as ratios.

What is measured, and how:

- **Signatures** (MB/s per core): :func:`bench.minhash.bench_minhash` on up to
  ``signature_mb`` of the input's texts (ours vs rensa vs datasketch, one thread, shingling included).
  ``signature_mb_s_per_core`` is ours by CPU time (the steady figure on a shared machine); the wall-clock
  figure sits beside it. DataTrove's signature step is timed inside its end-to-end run (stage 1 alone).
- **Paragraph dedup units** (M chars per CPU-second): :mod:`bench.paragraph_units` on the same
  texts: the per-shard unit sketch of `dedup.paragraphs` against Python per line, one thread.
- **End to end** (docs/s): a real :func:`curate.run.run_pipeline` on the local executor with ``normalize``
  and ``dedup:`` only (read, normalise, per-shard sketches, write Parquet, global clustering, rejects), in
  a fresh subprocess. Docs/s is by wall clock; CPU seconds (the run's process, DuckDB's threads and the
  pool workers) come with it, since the machine is shared.
- **Memory**: every measurement runs in its own fresh subprocess, so no figure inherits another's peak.
  Peaks are read from ``/proc/<pid>/status`` (``VmHWM``), not from ``getrusage``: Linux carries a parent's
  peak into ``ru_maxrss`` across fork + exec, so a child started by a 200 MB parent reports >= 200 MB
  (and pool workers inherit this process's). The global dedup phase resets its process's high-water mark
  on entry (``/proc/self/clear_refs``) and reads it on exit, so ``dedup_phase.peak_rss_mb`` is the phase
  alone; the shard phase's peak is the largest pool worker's, polled every 0.2 s, as is
  ``peak_total_rss_mb``, the most that the run's processes held together. ``peak_rss_mb`` is the
  largest single process (the dedup phase or a worker). CPU seconds do come from ``getrusage``.
  Without ``--input`` the benchmark generates corpora of the requested sizes and prints a memory-growth
  table: peak RSS at each size, per million documents, and the growth between sizes.
- **Peers end to end**, each in its own subprocess on the same subset (first ``peer_docs`` documents,
  one core): datasketch (``MinHash`` + ``MinHashLSH``, streaming query-then-insert with signature
  verification), rensa (``RMinHash`` + ``RMinHashLSH``, same loop), DataTrove (its four MinHash stages,
  28 buckets x 4 hashes, local executor, one task), and curate on the same subset with one worker.
  They all keep the signatures of every document in memory or on local files; ratios are curate / peer
  (> 1: curate faster; for RSS < 1: curate smaller).

The corpora are made in :mod:`bench.dedup_corpus`; the measured processes run in
:mod:`bench.dedup_children`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.dedup_children import peer_available, run_child
from bench.dedup_corpus import (
    BENCH_CACHE,
    DedupCorpusSpec,
    build_dedup_corpus,
    expand_inputs,
    read_texts,
    write_subset,
)
from bench.paragraph_units import bench_paragraph_hashing

# ----------------------------------------------------------------------------------------------------------
# The benchmark


def _ratio(ours: float | None, peer: float | None) -> float | None:
    return round(ours / peer, 2) if ours and peer else None


def _machine() -> dict[str, Any]:
    from bench.machine import machine

    return machine()


def _signatures(texts: Sequence[str], repeats: int) -> dict[str, Any]:
    from bench.minhash import bench_minhash

    return bench_minhash(texts, repeats=repeats)


def _peers(
    texts: Sequence[str],
    work: Path,
    peers: Sequence[str],
    settings: dict[str, Any],
    timeout: float,
    dedup: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """curate (one worker) and every importable peer on the same subset, each in a fresh process (none of
    it when no peer is asked for or importable)."""
    peers = [peer for peer in peers if peer_available(peer)]
    if not peers or not texts:
        return {"docs": 0, "skipped": "no peer documents, or no peer asked for or importable"}
    subset = work / "peer-subset.jsonl"
    write_subset(texts, subset)
    size = subset.stat().st_size
    out: dict[str, Any] = {
        "docs": len(texts),
        "mb": round(sum(len(t.encode()) for t in texts) / 1e6, 2),
        "lsh": f"{settings['bands']} bands x {settings['num_perm'] // settings['bands']} rows, "
        f"threshold {settings['threshold']}",
    }
    out["curate"] = run_child(
        {
            "kind": "curate",
            "files": [str(subset)],
            "out": str(work / "peer-curate"),
            "workers": 1,
            "dedup": dedup or {},
        }
    )
    for peer in peers:
        job = {
            "kind": peer,
            "subset": str(subset),
            "out": str(work / f"peer-{peer}"),
            "docs": len(texts),
            **settings,
        }
        if peer != "datatrove":
            job["out"] += ".jsonl"
        out[peer] = run_child(job, timeout)
        shutil.rmtree(work / f"peer-{peer}", ignore_errors=True)
        Path(work / f"peer-{peer}.jsonl").unlink(missing_ok=True)
    subset.unlink(missing_ok=True)
    out["subset_file_mb"] = round(size / 1e6, 2)
    return out


def _peer_ratios(signature: dict[str, Any], peers: dict[str, Any]) -> dict[str, Any]:
    ratios: dict[str, Any] = {}
    for name in ("rensa", "datasketch"):
        ratios[f"signature_vs_{name}"] = signature.get(f"ratio_vs_{name}_cpu")
        ratios[f"signature_vs_{name}_wall"] = signature.get(f"ratio_vs_{name}")
    ours = peers.get("curate") or {}
    datatrove = peers.get("datatrove") or {}
    stage = (datatrove.get("stages") or {}).get("signatures")
    if stage:
        mb_per_cpu_s = peers["mb"] / stage["cpu_s"] if stage["cpu_s"] else None
        signature["datatrove"] = {
            **stage,
            "mb_per_s": round(peers["mb"] / stage["wall_s"], 3),
            "mb_per_cpu_s": round(mb_per_cpu_s, 3) if mb_per_cpu_s else None,
            "note": "DataTrove's MinhashDedupSignature stage on the peer subset (JSONL reading included)",
        }
        ratios["signature_vs_datatrove"] = _ratio(signature["ours"]["mb_per_cpu_s"], mb_per_cpu_s)
    for name in ("datasketch", "rensa", "datatrove"):
        peer = peers.get(name) or {}
        if "docs_s" not in peer or "docs_s" not in ours:
            continue
        ratios[f"end_to_end_vs_{name}"] = _ratio(ours["docs_per_cpu_s"], peer["docs_per_cpu_s"])
        ratios[f"end_to_end_vs_{name}_wall"] = _ratio(ours["docs_s"], peer["docs_s"])
        ratios[f"peak_rss_vs_{name}"] = _ratio(ours["peak_rss_mb"], peer["peak_rss_mb"])
    return ratios


def _per_million(seconds: float | None, docs: int) -> float | None:
    """Seconds per million documents: flat across sizes when the work grows linearly."""
    return round(seconds / (docs / 1e6), 2) if seconds is not None and docs else None


def memory_growth(runs: Sequence[dict[str, Any]], memory_limit: str) -> dict[str, Any]:
    """Peak RSS at each corpus size, and how much it grew per extra million documents from one size to
    the next (the dedup phase's DuckDB work is capped at ``memory_limit`` and spills beyond it)."""
    table = [
        {
            "docs": run["docs"],
            "text_mb": run["text_mb"],
            "peak_rss_mb": run["peak_rss_mb"],
            "peak_rss_mb_per_million_docs": run["peak_rss_mb_per_million_docs"],
            "dedup_phase_peak_rss_mb": run["dedup_phase"].get("peak_rss_mb"),
            "dedup_phase_wall_s": run["dedup_phase"].get("wall_s"),
            "global_s_per_million": _per_million(run["dedup_phase"].get("wall_s"), run["docs"]),
            "shard_phase_peak_rss_mb": run["shard_phase_peak_rss_mb"],
            "wall_s": run["wall_s"],
            "cpu_s": run["cpu_s"],
        }
        for run in sorted(runs, key=lambda r: r["docs"])
    ]
    steps = [
        {
            "from_docs": a["docs"],
            "to_docs": b["docs"],
            "mb_per_extra_million_docs": round(
                (b["peak_rss_mb"] - a["peak_rss_mb"]) / ((b["docs"] - a["docs"]) / 1e6), 1
            ),
        }
        for a, b in zip(table, table[1:], strict=False)
        if b["docs"] > a["docs"]
    ]
    return {"duckdb_memory_limit": memory_limit, "table": table, "growth": steps}


def bench_dedup(
    inputs: Sequence[str] | None = None,
    docs: Sequence[int] = (100_000,),
    workers: int = 2,
    peer_docs: int = 5_000,  # 0: no peers
    peers: Sequence[str] = ("datasketch", "rensa", "datatrove"),
    signature_mb: float = 20.0,
    repeats: int = 3,
    cache_dir: Path = BENCH_CACHE,
    peer_timeout: float = 1800.0,
    dedup: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """All figures of `curate bench dedup` as one JSON-ready dict.

    With ``inputs`` (JSONL files, globs or folders) the pipeline runs once on them; otherwise once per
    size in ``docs`` on generated corpora (smallest first). Signatures and peers use the first input
    (or the smallest corpus). The top-level ``end_to_end_docs_s`` and ``peak_rss_mb`` are those of the
    largest run. ``dedup`` overrides the `dedup:` section (e.g. ``{"memory_limit": "1GB"}``).
    """
    from curate.dedup.settings import DedupConfig

    settings = DedupConfig.model_validate(dedup or {})
    lsh = {
        "num_perm": settings.num_perm,
        "bands": settings.bands,
        "ngram": settings.ngram,
        "threshold": settings.threshold,
    }
    cache_dir = cache_dir.resolve()
    work = cache_dir / "work"
    machine_at_start = _machine()
    if inputs:
        corpora = [{"files": expand_inputs(inputs), "generated": None}]
    else:
        corpora = []
        for size in sorted(set(docs)):
            folder = build_dedup_corpus(DedupCorpusSpec(docs=size), cache_dir)
            corpora.append(
                {
                    "files": sorted(folder.glob("shard-*.jsonl.zst")),
                    "generated": json.loads((folder / "corpus.json").read_text()) | {"folder": str(folder)},
                }
            )
    first = corpora[0]["files"]
    texts = read_texts(first, max_bytes=int(signature_mb * 1e6))
    signature = _signatures(texts, repeats)
    paragraphs = bench_paragraph_hashing(texts, repeats)
    peer_texts = read_texts(first, max_docs=peer_docs)
    peer_figures = _peers(peer_texts, work, peers, lsh, peer_timeout, dedup)
    runs = []
    for corpus in corpora:
        job = {
            "kind": "curate",
            "files": [str(f) for f in corpus["files"]],
            "out": str(work / "run"),
            "workers": workers,
            "dedup": dedup or {},
        }
        run = run_child(job)
        if "error" in run:
            raise RuntimeError(f"the dedup pipeline run failed: {run['error']}")
        run["input"] = {"files": len(corpus["files"]), "generated": corpus["generated"]}
        runs.append(run)
    largest = max(runs, key=lambda r: r["docs"])
    return {
        "signature_mb_s_per_core": signature["ours"]["mb_per_cpu_s"],
        "signature_mb_s_per_core_wall": signature["ours"]["mb_per_s"],
        "paragraph_mchars_s_per_core": paragraphs["ours"]["mchars_per_cpu_s"],
        "end_to_end_docs_s": largest["docs_s"],
        "end_to_end_docs_per_cpu_s": largest["docs_per_cpu_s"],
        "end_to_end_docs_s_per_core": round(largest["docs_s"] / workers, 1),
        "peak_rss_mb": largest["peak_rss_mb"],
        "peak_rss_mb_per_million_docs": largest["peak_rss_mb_per_million_docs"],
        "docs": largest["docs"],
        "workers": workers,
        "ratios": _peer_ratios(signature, peer_figures),
        "memory_growth": memory_growth(runs, settings.memory_limit),
        "runs": runs,
        "signature": signature,
        "paragraph_hashing": paragraphs,
        "peers_end_to_end": peer_figures,
        "input": [str(f) for f in first] if inputs else None,
        "machine": machine_at_start,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }


def format_report(result: dict[str, Any]) -> str:
    """The headline figures as a few lines of text (``--json`` prints everything)."""
    lines = [
        f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"load {result['machine']['load_average_1m']} -> {result['load_average_1m_at_end']}",
        f"signatures: {result['signature_mb_s_per_core']} MB per CPU-second "
        f"({result['signature_mb_s_per_core_wall']} MB/s wall), one core",
        f"paragraph dedup units: {result['paragraph_mchars_s_per_core']} M chars per CPU-second, one core "
        f"({result['paragraph_hashing']['ratio_vs_python_per_line']}x Python per line)",
        f"end to end ({result['workers']} workers, {result['docs']:,} docs): "
        f"{result['end_to_end_docs_s']:,} docs/s, "
        f"{result['end_to_end_docs_per_cpu_s']:,} docs per CPU-second",
        f"peak RSS: {result['peak_rss_mb']} MB "
        f"({result['peak_rss_mb_per_million_docs']} MB per million docs)",
        "memory growth:",
    ]
    for row in result["memory_growth"]["table"]:
        lines.append(
            f"  {row['docs']:>10,} docs  {row['text_mb']:>8} MB text  peak {row['peak_rss_mb']} MB "
            f"(dedup phase {row['dedup_phase_peak_rss_mb']}, shards {row['shard_phase_peak_rss_mb']})  "
            f"{row['wall_s']} s wall, {row['cpu_s']} s CPU; global phase {row['dedup_phase_wall_s']} s, "
            f"global_s_per_million {row['global_s_per_million']}"
        )
    for step in result["memory_growth"]["growth"]:
        lines.append(
            f"  {step['from_docs']:,} -> {step['to_docs']:,} docs: "
            f"{step['mb_per_extra_million_docs']} MB per extra million documents"
        )
    lines.append("ratios (curate / peer; CPU time unless _wall):")
    lines += [f"  {name}: {value}" for name, value in result["ratios"].items() if value is not None]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", action="append", default=[])
    parser.add_argument("--docs", type=int, action="append", default=[])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--peer-docs", type=int, default=5_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = bench_dedup(args.input or None, args.docs or [100_000], args.workers, args.peer_docs)
    print(json.dumps(result, indent=2) if args.json else format_report(result))


if __name__ == "__main__":
    main()

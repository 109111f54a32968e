"""`curate bench capacity`: a capacity model for a crawl of billions of documents, fitted on real runs.

The pipeline is a crawl run (normalize, tag, heuristics, langid, then exact + near dedup) on the local
executor, run at three sizes of the generated corpus of `curate bench dedup` (:mod:`bench.dedup_corpus`:
real book text from ``../shared/data``, 10% near-copies), each run in a fresh process. Per run:

- **shard phase** (read, stages, sketches, Parquet writing, on the pool workers): its CPU seconds, from
  ``getrusage`` of the run's process and its reaped pool workers when the global phase starts, and its
  wall time; the manifest's ``stage_cpu_seconds`` (read + the stages only, no sketching or writing)
  are reported beside it;
- **global phase** (:func:`curate.dedup.phase.run_dedup`, one DuckDB process here): wall and CPU seconds
  and peak RSS, measured by wrapping the function the run calls (as `curate bench dedup` does);
- **memory**: the largest pool worker's peak RSS and the driver's peak before the global phase;
- **shuffle bytes**: what the Ray global path (:mod:`curate.dedup.ray_global`) would move between
  workers, computed from the run's sketch files (see :func:`shuffle_figures` for what is counted).

The model is fitted on the smallest size: a line (a fixed part and a part per document read) through
a calibration run of CALIBRATION_DOCS documents and the smallest run, for each measured quantity, so its
error at the smallest size is 0 by construction; it predicts the wall and CPU seconds (per phase) of the
larger runs, and scales the per-document parts to ``CrawlShape.docs`` documents on nodes of a given
shape. The calibration run measures the fixed costs (interpreter and pool start-up, the langid model's
loading in each worker, DuckDB's set-up, the manifest), which a fit on one run would charge per document.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.dedup_children import RssSampler, _cpu_seconds, _reset_peak_rss, _status_mb
from bench.dedup_corpus import BENCH_CACHE, DedupCorpusSpec, build_dedup_corpus
from bench.machine import machine
from curate.errors import ConfigError

DEFAULT_DOCS = (25_000, 50_000, 100_000)
# Documents per input shard: an even number of shards at every default size, so that no worker idles
# through a last odd shard (with 5,000, the 25k run's 5 shards left one of 2 workers idle for a fifth).
SHARD_DOCS = 2_500
CALIBRATION_DOCS, CALIBRATION_SHARD_DOCS = 200, 50  # the run that measures the fixed costs
CRAWL_DOMAIN = "web"
STAGES: list[dict[str, Any]] = [
    {"normalize": {}},
    {"tag": {}},
    {"heuristics": {"mode": "drop"}},
    {"langid": {}},
]
DEDUP = {"exact": True, "near": True}


@dataclass(frozen=True)
class CrawlShape:
    """The crawl to size and the machines it runs on."""

    docs: float = 3e9
    hours: float = 24.0
    node_cores: int = 64
    node_memory_gib: float = 256.0


# ----------------------------------------------------------------------------------------------------------
# One measured run (in a fresh process)


def _crawl_config(files: Sequence[Path], out: Path) -> Any:
    from curate.config import parse_config, resolve_paths

    raw = {
        "inputs": [
            {"path": str(f), "name": f"in{i}", "format": "jsonl", "domain": CRAWL_DOMAIN}
            for i, f in enumerate(files)
        ],
        "stages": STAGES,
        "dedup": DEDUP,
    }
    return resolve_paths(parse_config(raw, "bench capacity"), out.parent, str(out))


def measure_run(files: Sequence[Path], out: Path, workers: int) -> dict[str, Any]:
    """One `run_pipeline` in this process, its two phases measured apart; the output is removed after.

    The shard phase ends where the run calls `run_dedup`: by then the pool has been shut down and its
    workers reaped, so their CPU time is in RUSAGE_CHILDREN."""
    import curate.run as run_module

    shutil.rmtree(out, ignore_errors=True)
    config = _crawl_config(files, out)
    phases: dict[str, Any] = {}
    inner = run_module.run_dedup
    sampler = RssSampler()
    started = time.perf_counter()
    cpu_start = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN)

    def measured_dedup(*args: Any, **kwargs: Any) -> Any:
        sampler.sample()
        shard_cpu = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_start
        phases["shard"] = {
            "wall_s": round(time.perf_counter() - started, 3),
            "cpu_s": round(shard_cpu, 3),
            "worker_peak_rss_mb": sampler.worker_peak() or _status_mb("VmHWM"),  # one worker: in the driver
            "driver_peak_rss_mb": _status_mb("VmHWM"),
        }
        _reset_peak_rss()
        wall, cpu = time.perf_counter(), _cpu_seconds(resource.RUSAGE_SELF)
        result = inner(*args, **kwargs)
        phases["global"] = {
            "wall_s": round(time.perf_counter() - wall, 3),
            "cpu_s": round(_cpu_seconds(resource.RUSAGE_SELF) - cpu, 3),
            "peak_rss_mb": _status_mb("VmHWM"),
            "path": result.global_path,
        }
        return result

    run_module.run_dedup = measured_dedup  # type: ignore[assignment]
    sampler.start()
    try:
        manifest = run_module.run_pipeline(config, "local", workers, progress=False)
    finally:
        sampler.stop()
        run_module.run_dedup = inner  # type: ignore[assignment]
    wall = time.perf_counter() - started
    cpu = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_start
    dedup = manifest["dedup"]
    totals = manifest["totals"]
    figures = {
        "docs": totals["read"],
        "text_bytes": totals["text_bytes"],
        "shards": len(files),
        "workers": workers,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "manifest_wall_seconds": manifest["wall_seconds"],
        "stage_cpu_seconds": manifest["stage_cpu_seconds"],
        "shard_phase": phases["shard"],
        "global_phase": phases["global"],
        "dedup_input_docs": dedup["documents"],
        "kept": totals["kept"],
        "rejected": totals["rejected"],
        "duplicates": totals["duplicates"],
        "candidate_pairs": dedup["candidate_pairs"],
        "verified_pairs": dedup["verified_pairs"],
        "clusters": dedup["clusters"],
        "shuffle": shuffle_figures(out, dedup, config.dedup),
        "code_version": manifest["code_version"],
    }
    shutil.rmtree(out, ignore_errors=True)
    return figures


def shuffle_figures(out: Path, dedup: dict[str, Any], settings: Any) -> dict[str, Any]:
    """Bytes the Ray global path would shuffle for this run, as Arrow buffer sizes (``Table.nbytes``).

    Counted: (1) the bucket rows of :func:`curate.dedup.ray_pairs.bucket_rows`, grouped by key: one row
    per document per band plus one for its exact hash, each carrying the signature (exact, from the
    sketch files); (2) the star pairs grouped by (a, b): their number exact (one per bucket member but
    the first), their width from the run's node names; (3) the rows grouped by node to place documents
    in components: one sketch row per document (exact), one label row per document in a cluster and one
    edge row per verified pair (widths from the run's node names). Not counted: the connected-components
    rounds (two group-bys of the edges per round, two or three rounds), the group-by of component rows
    by root, and the members' group-bys: each is proportional to the verified pairs or duplicates."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from curate.dedup.ray_global import _link_rows, _sketch_rows
    from curate.dedup.ray_pairs import PAIR_SCHEMA, bucket_rows, read_nodes
    from curate.writer import SKETCH_DIR

    bucket_bytes = sketch_bytes = 0
    keys, node_names = [], []
    for path in sorted((out / SKETCH_DIR).glob("*.parquet")):
        nodes = read_nodes(str(path), False)
        buckets = bucket_rows(nodes, settings.exact, settings.near)
        bucket_bytes += buckets.nbytes
        sketch_bytes += _sketch_rows(nodes).nbytes
        keys.append(buckets.select(["key", "node"]))
        node_names.append(nodes.column("node"))
    docs = sum(len(n) for n in node_names)
    if not docs:
        return {"total_bytes": 0, "counted": {}}
    sizes = pa.concat_tables(keys).group_by("key").aggregate([("node", "count_distinct")])
    star_pairs = int(pc.sum(pc.subtract(sizes.column("node_count_distinct"), 1)).as_py() or 0)
    names = pa.chunked_array([c for n in node_names for c in n.chunks])
    sample = names.slice(0, min(len(names), 10_000))
    flags = pa.array(np.zeros(len(sample), dtype=bool))
    scores = pa.array(np.ones(len(sample)))
    pairs_like = pa.table([sample, sample, flags, scores], schema=PAIR_SCHEMA)
    pair_width = _width(pairs_like)
    link_width = _width(_link_rows(sample, "edge", sample))
    in_clusters = dedup["clusters"] + dedup["exact_duplicate"] + dedup["near_duplicate"]
    counted = {
        "bucket_rows": bucket_bytes,
        "star_pairs": round(star_pairs * pair_width),
        "node_join_sketch_rows": sketch_bytes,
        "node_join_label_and_edge_rows": round((in_clusters + dedup["verified_pairs"]) * link_width),
    }
    total = sum(counted.values())
    return {
        "bytes_per_sketched_doc": round(total / docs, 1),
        "star_pairs": star_pairs,
        "total_bytes": total,
        "counted": counted,
    }


def _width(table: Any) -> float:
    return table.nbytes / table.num_rows if table.num_rows else 0.0


def run_measured(files: Sequence[Path], out: Path, workers: int) -> dict[str, Any]:
    """:func:`measure_run` in a fresh interpreter, so no run inherits another's memory or warm caches."""
    job = {"files": [str(f) for f in files], "out": str(out), "workers": workers}
    command = [sys.executable, "-m", "bench.capacity", json.dumps(job)]
    load_before = os.getloadavg()[0]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"the measured run failed (exit {done.returncode}): {tail}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    # the machine is shared: its load says how far the wall clock can be trusted
    return figures | {"load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


# ----------------------------------------------------------------------------------------------------------
# The model

# Each measured quantity of a run, by name: a fixed part plus a part per document read is fitted to each.
QUANTITIES = {
    "shard_cpu_s": lambda run: run["shard_phase"]["cpu_s"],
    "shard_wall_s": lambda run: run["shard_phase"]["wall_s"],
    "global_cpu_s": lambda run: run["global_phase"]["cpu_s"],
    "global_wall_s": lambda run: run["global_phase"]["wall_s"],
    "cpu_s": lambda run: run["cpu_s"],
    "wall_s": lambda run: run["wall_s"],
    "shuffle_bytes": lambda run: run["shuffle"]["total_bytes"],
    "shuffle_bucket_bytes": lambda run: run["shuffle"]["counted"].get("bucket_rows", 0),
}
OBJECT_STORE_SHARE = 0.3  # of a node's memory, Ray's default object store; a larger shuffle spills to disk


def fit_costs(small: dict[str, Any], large: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per quantity, the line through two runs: ``per_doc`` (the marginal cost, which is what scales to a
    crawl) and ``fixed`` (process start-up, the pool's spawn, model loading, the manifest)."""
    span = large["docs"] - small["docs"]
    if span <= 0:
        raise ConfigError(
            f"bench capacity: every --docs size must be above the calibration run's {small['docs']} documents"
        )
    costs = {}
    for name, measure in QUANTITIES.items():
        per_doc = (measure(large) - measure(small)) / span
        costs[name] = {"per_doc": per_doc, "fixed": measure(small) - per_doc * small["docs"]}
    return costs


def predict(costs: dict[str, dict[str, float]], docs: float) -> dict[str, float]:
    return {name: line["fixed"] + line["per_doc"] * docs for name, line in costs.items()}


def _error_pct(predicted: float, measured: float) -> float:
    return round(100 * (predicted - measured) / measured, 1) if measured else math.nan


def model_table(runs: Sequence[dict[str, Any]], costs: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Predicted vs measured at every size; error = (predicted - measured) / measured."""
    rows = []
    for run in runs:
        guess = predict(costs, run["docs"])
        row: dict[str, Any] = {"docs": run["docs"]}
        for name, measure in QUANTITIES.items():
            if not name.startswith("shuffle"):
                value = measure(run)
                row[name] = {
                    "predicted": round(guess[name], 2),
                    "measured": round(value, 2),
                    "error_pct": _error_pct(guess[name], value),
                }
        rows.append(row)
    return rows


def extrapolate(
    costs: dict[str, dict[str, float]], memory: dict[str, float], crawl: CrawlShape
) -> dict[str, Any]:
    """The crawl's core-hours per phase, bytes shuffled, memory per node and nodes for its turnaround,
    from the per-document (marginal) costs; the fixed costs are negligible at this scale.

    Two ways to run the global phase: on one DuckDB process as measured here (its wall time scaled by
    documents; the shard phase gets what is left of the turnaround), or spread over the cluster by the
    Ray path at the DuckDB path's CPU per document, an assumption: the Ray path was not measured at
    scale. Both assume every core of a node busy with one worker, as the shard phase runs."""
    cores, budget = crawl.node_cores, crawl.hours

    def scaled(name: str) -> float:  # a slope below 0 is noise in a tiny fit, not a cost that shrinks
        return max(0.0, costs[name]["per_doc"]) * crawl.docs

    shard_core_h, global_core_h = scaled("shard_cpu_s") / 3600, scaled("global_cpu_s") / 3600
    global_wall_h = scaled("global_wall_s") / 3600
    left = budget - global_wall_h
    duckdb_nodes = math.ceil(shard_core_h / (cores * left)) if left > 0 else None
    spread_nodes = max(1, math.ceil((shard_core_h + global_core_h) / (cores * budget)))
    shuffle, largest_shuffle = scaled("shuffle_bytes"), scaled("shuffle_bucket_bytes")
    object_store = OBJECT_STORE_SHARE * crawl.node_memory_gib * 2**30
    shard_node_gib = cores * memory["worker_peak_rss_mb"] / 1024
    return {
        "crawl_docs": crawl.docs,
        "turnaround_hours": budget,
        "node": {"cores": cores, "memory_gib": crawl.node_memory_gib},
        "shard_phase_core_hours": round(shard_core_h),
        "global_phase_core_hours_duckdb": round(global_core_h),
        "global_phase_wall_hours_one_duckdb_process": round(global_wall_h, 1),
        "shuffle_bytes_total": round(shuffle),
        "shuffle_tib_total": round(shuffle / 2**40, 2),
        "memory": {
            "shard_phase_gib_per_node": round(shard_node_gib, 1),
            "shard_phase_fits": shard_node_gib <= crawl.node_memory_gib,
            "worker_peak_rss_mb": memory["worker_peak_rss_mb"],
            "global_phase_duckdb_peak_rss_mb": memory["global_peak_rss_mb"],
        },
        "nodes_duckdb_global": duckdb_nodes,
        "nodes_duckdb_global_note": (
            f"the shard phase in the {left:.1f} h the one-process global phase leaves"
            if left > 0
            else f"impossible: the global phase alone takes {global_wall_h:.1f} h on one DuckDB process"
        ),
        "nodes_ray_global_assumed": spread_nodes,
        "shuffle_gib_per_node_ray_global": round(shuffle / spread_nodes / 2**30, 1),
        "bucket_shuffle_tib": round(largest_shuffle / 2**40, 2),
        "nodes_to_hold_bucket_shuffle_in_object_stores": math.ceil(largest_shuffle / object_store),
        "object_store_gib_per_node": round(object_store / 2**30, 1),
    }


def unit_costs(costs: dict[str, dict[str, float]], fit: dict[str, Any]) -> dict[str, Any]:
    """The marginal per-phase costs in readable units, with the shard phase per MB of text (at the fit
    run's mean document size) and its parallel efficiency on this machine (CPU per document / workers
    over wall per document), and what survives the filters into the global phase."""
    mb_per_doc = fit["text_bytes"] / fit["docs"] / 1e6
    shard_cpu, shard_wall = costs["shard_cpu_s"]["per_doc"], costs["shard_wall_s"]["per_doc"]
    return {
        "shard_cpu_ms_per_doc": round(shard_cpu * 1e3, 3),
        "shard_cpu_s_per_mb": round(shard_cpu / mb_per_doc, 3),
        "shard_efficiency": round(shard_cpu / fit["workers"] / shard_wall, 2) if shard_wall > 0 else None,
        "share_of_docs_into_global_phase": round(fit["dedup_input_docs"] / fit["docs"], 3),
        "global_wall_s_per_million_docs": round(costs["global_wall_s"]["per_doc"] * 1e6, 1),
        "global_cpu_s_per_million_docs": round(costs["global_cpu_s"]["per_doc"] * 1e6, 1),
        "shuffle_bytes_per_doc": round(costs["shuffle_bytes"]["per_doc"], 1),
        "text_kb_per_doc": round(mb_per_doc * 1e3, 2),
        "fixed_wall_s": round(costs["wall_s"]["fixed"], 2),
        "fixed_cpu_s": round(costs["cpu_s"]["fixed"], 2),
    }


def capacity_model(
    calibration: dict[str, Any], runs: Sequence[dict[str, Any]], crawl: CrawlShape
) -> dict[str, Any]:
    """Fit on the calibration run and the smallest run, check against every run, extrapolate."""
    runs = sorted(runs, key=lambda r: r["docs"])
    costs = fit_costs(calibration, runs[0])
    memory = {
        "worker_peak_rss_mb": max(r["shard_phase"]["worker_peak_rss_mb"] or 0.0 for r in runs),
        "global_peak_rss_mb": max(r["global_phase"]["peak_rss_mb"] or 0.0 for r in runs),
    }
    return {
        "fitted_on_docs": [calibration["docs"], runs[0]["docs"]],
        "unit_costs": unit_costs(costs, runs[0]),
        "predicted_vs_measured": model_table(runs, costs),
        "crawl": extrapolate(costs, memory, crawl),
    }


# ----------------------------------------------------------------------------------------------------------
# The benchmark


def corpus_files(
    docs: int, cache_dir: Path = BENCH_CACHE, shard_docs: int = SHARD_DOCS
) -> tuple[list[Path], dict[str, Any]]:
    """The generated corpus of `curate bench dedup` at ``docs`` documents, in shards of ``shard_docs``."""
    folder = build_dedup_corpus(DedupCorpusSpec(docs=docs, shard_docs=shard_docs), cache_dir)
    return sorted(folder.glob("shard-*.jsonl.zst")), json.loads((folder / "corpus.json").read_text())


def bench_capacity(
    docs: Sequence[int] = DEFAULT_DOCS,
    workers: int = 2,
    crawl: CrawlShape = CrawlShape(),
    cache_dir: Path = BENCH_CACHE,
) -> dict[str, Any]:
    """All figures of `curate bench capacity` as one JSON-ready dict."""
    if min(docs) <= CALIBRATION_DOCS:
        raise ConfigError(f"--docs {min(docs)}: give sizes above the calibration run's {CALIBRATION_DOCS}")
    cache_dir = cache_dir.resolve()
    machine_at_start = machine()
    out = cache_dir / "work" / "capacity-run"
    calibration = run_measured(
        corpus_files(CALIBRATION_DOCS, cache_dir, CALIBRATION_SHARD_DOCS)[0], out, workers
    )
    runs = []
    for size in sorted(set(docs)):
        files, corpus = corpus_files(size, cache_dir)
        runs.append(run_measured(files, out, workers) | {"corpus": corpus})
    return {
        "machine": machine_at_start,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "pipeline": {"stages": STAGES, "dedup": DEDUP, "executor": "local", "workers": workers},
        "crawl_shape": asdict(crawl),
        "model": capacity_model(calibration, runs, crawl),
        "calibration_run": calibration,
        "runs": runs,
    }


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    print(json.dumps(measure_run([Path(f) for f in job["files"]], Path(job["out"]), job["workers"])))

"""The measured processes of `curate bench dedup`: curate and each peer in a fresh interpreter, with CPU
time and peak RSS read the same way for all (see :mod:`bench.dedup_scale` for why /proc, not getrusage).

`python -m bench.dedup_children JOB_JSON` runs one measurement and prints its JSON figures last.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# ----------------------------------------------------------------------------------------------------------
# Measurements in fresh subprocesses


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _status_mb(field: str, pid: int | str = "self") -> float | None:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of a process in MB, from /proc; None when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _descendants(pid: int | str = "self") -> list[int]:
    found = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


class RssSampler(threading.Thread):
    """Polls this process's descendants (the pool workers): each one's peak RSS (``VmHWM``, its own since
    exec) and the largest sum of resident memory of this process and all of them at one instant."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.worker_peaks: dict[int, float] = {}
        self.total_peak = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def sample(self) -> None:
        total = _status_mb("VmRSS") or 0.0
        for pid in _descendants():
            peak, now = _status_mb("VmHWM", pid), _status_mb("VmRSS", pid)
            if peak is not None:
                self.worker_peaks[pid] = max(peak, self.worker_peaks.get(pid, 0.0))
            total += now or 0.0
        self.total_peak = max(self.total_peak, total)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def worker_peak(self) -> float | None:
        return max(self.worker_peaks.values()) if self.worker_peaks else None


def _reset_peak_rss() -> bool:
    """Reset this process's high-water mark (``VmHWM``); Linux >= 4.0 only."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _child_curate(job: dict[str, Any]) -> dict[str, Any]:
    """One `run_pipeline` (normalize + dedup) in this fresh process, the global dedup phase measured apart."""
    import curate.run as run_module
    from curate.config import parse_config, resolve_paths
    from curate.schema import UNASSIGNED_DOMAIN

    out = Path(job["out"])
    shutil.rmtree(out, ignore_errors=True)
    # `domain` is set because the dedup phase finds a document's part by its domain, and a run without
    # `tag` leaves it null while the part lives in domain=unassigned (an AccountingError otherwise).
    raw = {
        "inputs": [
            {"path": glob.escape(f), "name": f"in{i}", "format": "jsonl", "domain": UNASSIGNED_DOMAIN}
            for i, f in enumerate(job["files"])
        ],
        "stages": [{"normalize": {}}],
        "dedup": job.get("dedup") or {},
    }
    config = resolve_paths(parse_config(raw, "bench"), out.parent, str(out))
    phase: dict[str, Any] = {}
    inner = run_module.run_dedup

    sampler = RssSampler()

    def measured_dedup(*args: Any, **kwargs: Any) -> Any:
        sampler.sample()
        phase["shard_phase_main_peak_rss_mb"] = _status_mb("VmHWM")
        phase["shard_phase_worker_peak_rss_mb"] = sampler.worker_peak()
        phase["rss_before_mb"] = _status_mb("VmRSS")
        phase["peak_reset"] = _reset_peak_rss()
        wall, cpu = time.perf_counter(), _cpu_seconds(resource.RUSAGE_SELF)
        result = inner(*args, **kwargs)
        phase["wall_s"] = round(time.perf_counter() - wall, 3)
        phase["cpu_s"] = round(_cpu_seconds(resource.RUSAGE_SELF) - cpu, 3)
        phase["peak_rss_mb"] = _status_mb("VmHWM")
        phase["docs_s"] = round(result.documents / phase["wall_s"], 1) if phase["wall_s"] else None
        return result

    run_module.run_dedup = measured_dedup  # type: ignore[assignment]
    baseline = _status_mb("VmRSS")
    sampler.start()
    wall = time.perf_counter()
    cpu = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN)
    try:
        manifest = run_module.run_pipeline(config, "local", job["workers"], progress=False)
    finally:
        sampler.stop()
    wall = time.perf_counter() - wall
    cpu = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
    docs = manifest["totals"]["read"]
    workers_peak = phase.get("shard_phase_worker_peak_rss_mb")
    shard_peak = workers_peak if workers_peak else phase.get("shard_phase_main_peak_rss_mb")
    peak = max(phase.get("peak_rss_mb") or 0.0, shard_peak or 0.0)
    dedup = manifest.get("dedup") or {}
    if not job.get("keep_output"):
        shutil.rmtree(out, ignore_errors=True)
    return {
        "docs": docs,
        "text_mb": round(manifest["totals"]["text_bytes"] / 1e6, 1),
        "workers": job["workers"],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "docs_s": round(docs / wall, 1),
        "docs_per_cpu_s": round(docs / cpu, 1) if cpu > 0 else None,
        "mb_s": round(manifest["totals"]["text_bytes"] / 1e6 / wall, 2),
        "peak_rss_mb": peak,
        "peak_rss_mb_per_million_docs": round(peak / docs * 1e6, 1) if docs else None,
        "peak_total_rss_mb": round(sampler.total_peak, 1),
        "shard_phase_peak_rss_mb": shard_peak,
        "shard_phase_in": "the largest pool worker" if workers_peak else "the main process",
        "baseline_rss_mb": baseline,
        "dedup_phase": {k: v for k, v in phase.items() if not k.startswith("shard_phase")},
        "dedup": {
            k: dedup.get(k)
            for k in (
                "documents",
                "candidate_pairs",
                "verified_pairs",
                "clusters",
                "exact_duplicate",
                "near_duplicate",
            )
        },
        "duplicates": manifest["totals"].get("duplicates"),
        "kept": manifest["totals"].get("kept"),
    }


# The clustering steps of the global phase, timed by wrapping the names `curate.dedup.phase` calls them by
# (cumulative seconds; a step the phase does not call is left out).
GLOBAL_STEPS = ("load_docs", "candidate_pairs", "verified_pairs", "choose_keepers", "apply_to_part")


def _timed_steps(module: Any, names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Wall and CPU seconds (this process's, DuckDB's threads included) of each step, summed over calls
    (on a shared machine the CPU seconds are the steadier figure), and the process's peak RSS so far."""
    seconds: dict[str, dict[str, float]] = {}
    for name in names:
        inner = getattr(module, name, None)
        if inner is None:
            continue

        def timed(*args: Any, _inner: Any = inner, _name: str = name, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), _cpu_seconds(resource.RUSAGE_SELF)
            try:
                return _inner(*args, **kwargs)
            finally:
                step = seconds.setdefault(_name, {"wall_s": 0.0, "cpu_s": 0.0})
                step["wall_s"] = round(step["wall_s"] + time.perf_counter() - wall, 2)
                step["cpu_s"] = round(step["cpu_s"] + _cpu_seconds(resource.RUSAGE_SELF) - cpu, 2)
                step["peak_rss_mb_after"] = _status_mb("VmHWM")  # where it rises, this step set the peak

        setattr(module, name, timed)
    return seconds


def _child_global(job: dict[str, Any]) -> dict[str, Any]:
    """The real `run_dedup` on an output folder that already holds a shard phase's files (see
    :mod:`bench.dedup_global`): wall and CPU seconds, each step's seconds, and memory above the imports."""
    import curate.dedup.phase as phase_module
    from bench.dedup_corpus import pipeline_config
    from curate.plan import build_plan

    out = Path(job["out"])
    plan = build_plan(pipeline_config([Path(f) for f in job["files"]], 0, out, job.get("dedup") or {}))
    assert plan.config.dedup is not None
    steps = _timed_steps(phase_module, GLOBAL_STEPS)
    before = _status_mb("VmRSS")
    reset = _reset_peak_rss()
    wall, cpu = time.perf_counter(), _cpu_seconds(resource.RUSAGE_SELF)
    result = phase_module.run_dedup(plan, "bench-global", "local")
    wall = time.perf_counter() - wall
    cpu = _cpu_seconds(resource.RUSAGE_SELF) - cpu
    peak = _status_mb("VmHWM")
    docs = result.documents
    return {
        "docs": docs,
        "global_s": round(wall, 2),
        "global_s_per_million": round(wall / (docs / 1e6), 2) if docs else None,
        "cpu_s": round(cpu, 2),
        "cpu_s_per_million": round(cpu / (docs / 1e6), 2) if docs else None,
        "steps_s": steps,
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "peak_above_imports_mb": round(peak - before, 1) if peak is not None and before is not None else None,
        "peak_reset": reset,
        "memory_limit": plan.config.dedup.memory_limit,
        "dedup": {
            k: getattr(result, k)
            for k in ("candidate_pairs", "verified_pairs", "clusters", "exact_duplicate", "near_duplicate")
        },
        "members_sha256": _members_digest(out),
    }


def _members_digest(out: Path) -> str:
    """A digest of the clusters (members.parquet's rows in order): equal digests, identical clusters."""
    import hashlib

    import pyarrow.parquet as pq

    members = pq.read_table(out / "_state" / "dedup" / "members.parquet")
    digest = hashlib.sha256()
    for batch in members.to_batches(100_000):
        for column in batch.columns:
            digest.update(str(column.to_pylist()).encode())
    return digest.hexdigest()[:16]


def _peer_docs(path: Path) -> Iterator[tuple[str, str]]:
    import orjson

    with open(path, "rb") as handle:
        for line in handle:
            record = orjson.loads(line)
            yield record["id"], record["text"]


def _write_kept(sink: Any, doc_id: str, text: str) -> None:
    import orjson

    sink.write(orjson.dumps({"id": doc_id, "text": text}) + b"\n")


def _child_datasketch(job: dict[str, Any]) -> dict[str, Any]:
    """Streaming dedup as datasketch users write it: query the LSH, verify by estimated Jaccard, insert."""
    from datasketch import MinHash, MinHashLSH

    from bench.minhash import python_shingles

    num_perm, bands, threshold = job["num_perm"], job["bands"], job["threshold"]
    lsh = MinHashLSH(num_perm=num_perm, params=(bands, num_perm // bands))
    signatures: dict[str, MinHash] = {}
    duplicates = 0
    with open(job["out"], "wb") as sink:
        for doc_id, text in _peer_docs(Path(job["subset"])):
            minhash = MinHash(num_perm=num_perm, seed=0)
            minhash.update_batch([s.encode("utf-8") for s in python_shingles(text, job["ngram"])])
            if any(minhash.jaccard(signatures[c]) >= threshold for c in lsh.query(minhash)):
                duplicates += 1
                continue
            lsh.insert(doc_id, minhash)
            signatures[doc_id] = minhash
            _write_kept(sink, doc_id, text)
    return {"duplicates": duplicates}


def _child_rensa(job: dict[str, Any]) -> dict[str, Any]:
    """The same streaming loop with rensa's RMinHash and RMinHashLSH."""
    from rensa import RMinHash, RMinHashLSH

    from bench.minhash import python_shingles

    num_perm, threshold = job["num_perm"], job["threshold"]
    lsh = RMinHashLSH(threshold=threshold, num_perm=num_perm, num_bands=job["bands"])
    signatures: dict[int, Any] = {}
    duplicates = 0
    with open(job["out"], "wb") as sink:
        for key, (doc_id, text) in enumerate(_peer_docs(Path(job["subset"]))):
            minhash = RMinHash(num_perm=num_perm, seed=0)
            minhash.update(python_shingles(text, job["ngram"]))
            if any(minhash.jaccard(signatures[c]) >= threshold for c in lsh.query(minhash)):
                duplicates += 1
                continue
            lsh.insert(key, minhash)
            signatures[key] = minhash
            _write_kept(sink, doc_id, text)
    return {"duplicates": duplicates}


def _datatrove_hashes_take_str() -> None:
    """DataTrove 0.10 hashes shingles as str, which xxhash >= 4 refuses; encode them as xxhash 3 did."""
    import xxhash
    from datatrove.utils.hashes import xxhash as hashes

    hashes.xxhash32 = lambda data: xxhash.xxh32_intdigest(data.encode() if isinstance(data, str) else data)
    hashes.xxhash64 = lambda data: xxhash.xxh64_intdigest(data.encode() if isinstance(data, str) else data)


def _child_datatrove(job: dict[str, Any]) -> dict[str, Any]:
    """DataTrove's four MinHash stages on the local executor, one task at a time in this process."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    _datatrove_hashes_take_str()
    subset, work = Path(job["subset"]), Path(job["out"])
    shutil.rmtree(work, ignore_errors=True)
    config = MinhashConfig(
        n_grams=job["ngram"], num_buckets=job["bands"], hashes_per_bucket=job["num_perm"] // job["bands"]
    )

    def reader() -> JsonlReader:
        return JsonlReader(str(subset.parent), glob_pattern=subset.name, recursive=False)

    stages = {
        "signatures": ([reader(), MinhashDedupSignature(output_folder=str(work / "sigs"), config=config)], 1),
        "buckets": (
            [
                MinhashDedupBuckets(
                    input_folder=str(work / "sigs"), output_folder=str(work / "buckets"), config=config
                )
            ],
            config.num_buckets,
        ),
        "cluster": (
            [
                MinhashDedupCluster(
                    input_folder=str(work / "buckets"), output_folder=str(work / "remove"), config=config
                )
            ],
            1,
        ),
        "filter": (
            [
                reader(),
                MinhashDedupFilter(input_folder=str(work / "remove")),
                JsonlWriter(str(work / "kept"), compression=None),
            ],
            1,
        ),
    }
    seconds = {}
    for name, (pipeline, tasks) in stages.items():
        wall, cpu = time.perf_counter(), _cpu_seconds(resource.RUSAGE_SELF)
        LocalPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=1, logging_dir=str(work / "logs" / name)
        ).run()
        seconds[name] = {
            "wall_s": round(time.perf_counter() - wall, 3),
            "cpu_s": round(_cpu_seconds(resource.RUSAGE_SELF) - cpu, 3),
        }
    kept = 0
    for path in (work / "kept").glob("*"):
        with open(path, "rb") as handle:
            kept += sum(1 for _ in handle)
    return {"stages": seconds, "kept": kept}


_CHILDREN = {
    "curate": _child_curate,
    "global": _child_global,
    "datasketch": _child_datasketch,
    "rensa": _child_rensa,
    "datatrove": _child_datatrove,
}


_IMPORTS = {
    "curate": ["curate.run"],
    "global": ["curate.run", "bench.dedup_global"],
    "datasketch": ["datasketch", "bench.minhash"],
    "rensa": ["rensa", "bench.minhash"],
    "datatrove": [
        "datatrove.executor",
        "datatrove.pipeline.dedup.minhash",
        "datatrove.pipeline.readers",
        "datatrove.pipeline.writers",
    ],
}


def child_main(job: dict[str, Any]) -> dict[str, Any]:
    """Imports come before the clock starts, for every contender alike."""
    for module in _IMPORTS[job["kind"]]:
        importlib.import_module(module)
    wall, cpu = time.perf_counter(), _cpu_seconds(resource.RUSAGE_SELF)
    result = _CHILDREN[job["kind"]](job)
    if job["kind"] not in ("curate", "global"):
        wall = time.perf_counter() - wall
        cpu = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
        docs = job["docs"]
        result.update(
            docs=docs,
            wall_s=round(wall, 2),
            cpu_s=round(cpu, 2),
            docs_s=round(docs / wall, 1),
            docs_per_cpu_s=round(docs / cpu, 1) if cpu > 0 else None,
            peak_rss_mb=_status_mb("VmHWM"),
        )
    return result


_ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
}


def run_child(job: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; its JSON result is the last line it prints."""
    env = {**os.environ, **(_ONE_THREAD if job["kind"] not in ("curate", "global") else {})}
    env.setdefault("LOGURU_LEVEL", "WARNING")  # DataTrove logs every task to stderr otherwise
    command = [sys.executable, "-m", "bench.dedup_children", json.dumps(job)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: " + " | ".join(tail)}
    return json.loads(done.stdout.strip().splitlines()[-1])


def peer_available(kind: str) -> bool:
    return importlib.util.find_spec(kind) is not None


if __name__ == "__main__":
    print(json.dumps(child_main(json.loads(sys.argv[1]))))

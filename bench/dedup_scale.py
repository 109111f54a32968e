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

Generated corpus (no ``--input``): real text from ``../shared/data``'s Project Gutenberg books, cut into
passages whose cut points shift every round; a document joins two passages from far-apart places of the
round's book order (which is reshuffled every round), so passages reused in a later round never make
whole documents alike (at 100k documents dedup finds ~10 duplicates besides the injected ones). On top,
``dup_rate`` of the documents are near-copies of an earlier document (a third verbatim, the rest with
shifted cut points: up to 4% of the words dropped at either end), often in another shard.
Shards are zstd JSONL in ``.cache/bench/dedup/<spec>/``, built once and reused.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import importlib.util
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.paragraph_units import bench_paragraph_hashing
from curate.errors import ConfigError

BENCH_CACHE = Path(".cache/bench/dedup")
CORPUS_VERSION = 1
GLOB_CHARS = "*?["


# ----------------------------------------------------------------------------------------------------------
# Generated corpus


@dataclass(frozen=True)
class DedupCorpusSpec:
    """A generated benchmark corpus; its fields name its cache folder, so a new spec is a new corpus."""

    docs: int
    seed: int = 0
    dup_rate: float = 0.1  # share of documents that are copies of an earlier one
    passage_min: int = 500  # characters of each of a document's two passages (uniform in [min, max])
    passage_max: int = 2000
    shard_docs: int = 25_000

    def key(self) -> str:
        return (
            f"v{CORPUS_VERSION}-{self.docs}docs-s{self.seed}-dup{self.dup_rate:g}"
            f"-p{self.passage_min}-{self.passage_max}-sh{self.shard_docs}"
        )


def _books(shared: Path) -> list[str]:
    books = []
    for path in sorted((shared / "domains" / "books").glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if text:
            books.append(text)
    if not books:
        raise ConfigError(f"no books in {shared / 'domains' / 'books'}: the dedup benchmark needs them")
    return books


def _passages(stream: str, rng: random.Random, low: int, high: int) -> list[str]:
    """Cut ``stream`` into passages of ``low..high`` characters at whitespace, from a random shift."""
    out = []
    start = stream.find(" ", rng.randrange(high)) + 1
    while 0 < start < len(stream):
        end = stream.find(" ", start + rng.randint(low, high))
        end = len(stream) if end < 0 else end
        passage = stream[start:end].strip()
        if passage:
            out.append(passage)
        start = end + 1
    return out


def _near_copy(text: str, rng: random.Random) -> str:
    """A third verbatim; else the same text with cut points moved by up to 4% of its words per end."""
    if rng.random() < 1 / 3:
        return text
    words = text.split(" ")
    most = max(1, len(words) // 25)
    head, tail = rng.randint(0, most), rng.randint(0, most)
    return " ".join(words[head : len(words) - tail] or words)


def generate_documents(books: Sequence[str], spec: DedupCorpusSpec) -> Iterator[dict[str, Any]]:
    """``spec.docs`` documents, deterministic for a spec; copies name their original in ``copy_of``."""
    rng = random.Random(spec.seed)
    # (id, text) of earlier originals that copies are drawn from: 20,000 of them, each new original taking
    # a random place once the pool is full, so copies reach back over several shards.
    pool: list[tuple[str, str]] = []
    emitted = 0
    round_no = 0
    while True:
        order = list(range(len(books)))
        rng.shuffle(order)
        pieces = _passages("\n\n".join(books[i] for i in order), rng, spec.passage_min, spec.passage_max)
        half = len(pieces) // 2
        for k in range(half):
            if emitted >= spec.docs:
                return
            if pool and rng.random() < spec.dup_rate:
                original_id, original = pool[rng.randrange(len(pool))]
                yield {"id": f"c{emitted}", "text": _near_copy(original, rng), "copy_of": original_id}
            else:
                doc_id = f"r{round_no}-{k}"
                text = pieces[k] + "\n\n" + pieces[k + half]
                yield {"id": doc_id, "text": text}
                if len(pool) < 20_000:
                    pool.append((doc_id, text))
                else:
                    pool[rng.randrange(len(pool))] = (doc_id, text)
            emitted += 1
        round_no += 1


def build_dedup_corpus(spec: DedupCorpusSpec, cache_dir: Path = BENCH_CACHE) -> Path:
    """The corpus's folder (``shard-*.jsonl.zst`` and ``corpus.json``), generated on first use."""
    from curate.jsonl_files import write_jsonl
    from curate.textsources import shared_data_dir

    folder = cache_dir / spec.key()
    if (folder / "corpus.json").exists():
        return folder
    shared = shared_data_dir()
    if shared is None:
        raise ConfigError("without --input the dedup benchmark needs ../shared/data (or CURATE_SHARED_DATA)")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    documents = generate_documents(_books(shared), spec)
    stats = {"docs": 0, "copies": 0, "text_bytes": 0}

    def take(n: int) -> Iterator[dict[str, Any]]:
        for _, doc in zip(range(n), documents, strict=False):
            stats["docs"] += 1
            stats["copies"] += "copy_of" in doc
            stats["text_bytes"] += len(doc["text"].encode())
            yield doc

    for index in range((spec.docs + spec.shard_docs - 1) // spec.shard_docs):
        write_jsonl(folder / f"shard-{index:04d}.jsonl.zst", take(spec.shard_docs))
    (folder / "corpus.json").write_text(json.dumps({"spec": asdict(spec), **stats}, indent=1))
    return folder


# ----------------------------------------------------------------------------------------------------------
# Inputs


def _looks_jsonl(name: str) -> bool:
    return any(ext in name.lower() for ext in (".json", ".ndjson"))


def expand_inputs(patterns: Sequence[str]) -> list[Path]:
    """Files named by ``patterns``: a file, a glob, or a folder (its ``*.json*`` / ``*.ndjson*`` files)."""
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if any(c in pattern for c in GLOB_CHARS):
            matches = [Path(p) for p in sorted(glob.glob(str(path), recursive=True)) if Path(p).is_file()]
        elif path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.is_file() and _looks_jsonl(p.name))
        else:
            matches = [path] if path.is_file() else []
        if not matches:
            raise ConfigError(f"--input {pattern}: matches no file; pass a JSONL shard, a glob or a folder")
        files += [m.resolve() for m in matches]
    return list(dict.fromkeys(files))


def read_texts(files: Sequence[Path], max_docs: int | None = None, max_bytes: int | None = None) -> list[str]:
    """Texts of the JSONL ``files`` in order (the pipeline's own reader and field names), up to a cap."""
    from curate.readers.batches import ShardSource, read_batches
    from curate.readers.fields import FieldMap

    texts: list[str] = []
    size = 0
    if max_docs is not None and max_docs <= 0:
        return texts
    for path in files:
        for batch in read_batches(ShardSource(path, path.name, "jsonl", FieldMap()), 1000, 1 << 26):
            for text in batch.docs.column("text").to_pylist():
                texts.append(text)
                size += len(text.encode())
                if (max_docs is not None and len(texts) >= max_docs) or (
                    max_bytes is not None and size >= max_bytes
                ):
                    return texts
    return texts


def _write_subset(texts: Sequence[str], path: Path) -> None:
    import orjson

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as sink:
        for n, text in enumerate(texts):
            sink.write(orjson.dumps({"id": f"d{n:08d}", "text": text}) + b"\n")


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
    "datasketch": _child_datasketch,
    "rensa": _child_rensa,
    "datatrove": _child_datatrove,
}


_IMPORTS = {
    "curate": ["curate.run"],
    "datasketch": ["datasketch", "bench.minhash"],
    "rensa": ["rensa", "bench.minhash"],
    "datatrove": [
        "datatrove.executor",
        "datatrove.pipeline.dedup.minhash",
        "datatrove.pipeline.readers",
        "datatrove.pipeline.writers",
    ],
}


def _child_main(job: dict[str, Any]) -> dict[str, Any]:
    """Imports come before the clock starts, for every contender alike."""
    for module in _IMPORTS[job["kind"]]:
        importlib.import_module(module)
    wall, cpu = time.perf_counter(), _cpu_seconds(resource.RUSAGE_SELF)
    result = _CHILDREN[job["kind"]](job)
    if job["kind"] != "curate":
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
    env = {**os.environ, **(_ONE_THREAD if job["kind"] != "curate" else {})}
    env.setdefault("LOGURU_LEVEL", "WARNING")  # DataTrove logs every task to stderr otherwise
    command = [sys.executable, "-m", "bench.dedup_scale", "--child", json.dumps(job)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: " + " | ".join(tail)}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _peer_available(kind: str) -> bool:
    return importlib.util.find_spec(kind) is not None


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
    peers = [peer for peer in peers if _peer_available(peer)]
    if not peers or not texts:
        return {"docs": 0, "skipped": "no peer documents, or no peer asked for or importable"}
    subset = work / "peer-subset.jsonl"
    _write_subset(texts, subset)
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
            f"{row['wall_s']} s wall, {row['cpu_s']} s CPU"
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
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--input", action="append", default=[])
    parser.add_argument("--docs", type=int, action="append", default=[])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--peer-docs", type=int, default=5_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child_main(json.loads(args.child))))
        return
    result = bench_dedup(args.input or None, args.docs or [100_000], args.workers, args.peer_docs)
    print(json.dumps(result, indent=2) if args.json else format_report(result))


if __name__ == "__main__":
    main()

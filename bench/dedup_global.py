"""`curate bench dedup --global-phase`: the global dedup phase alone (the real `run_dedup`) at several
corpus sizes, on the sketches and corpus parts the real shard phase writes, built once and cached.

Why apart from the end-to-end runs: at millions of documents the shard phase (text -> sketches) costs
most of a run and is linear by construction (one pool task per shard), while the global phase is where
superlinear growth can hide. So the shard phase runs once, on the largest generated corpus, in chunks of
``chunk_docs`` documents (one output folder per chunk, each a real `run_shards` over that chunk's JSONL
shards, cached under ``.cache/bench/dedup/global/``). A corpus of N documents is its first N /
``chunk_docs`` chunks: their sketch and corpus files are hard-linked into a fresh output folder (the
phase replaces files by rename, so the cache is never changed), and `run_dedup` runs there in a fresh
subprocess (:func:`bench.dedup_children._child_global`). The generated corpus is deterministic, so the
first N documents of the 8M corpus are exactly the N-document corpus.

Per size: ``global_s`` (wall seconds of `run_dedup`, applying the clusters to the corpus parts
included), ``global_s_per_million`` (that over millions of documents), its CPU seconds, the seconds of
each clustering step, and memory: ``rss_before_mb`` (the process with its imports, before the phase),
``peak_rss_mb`` (VmHWM over the phase) and ``peak_above_imports_mb`` (the difference), to compare with
``dedup.memory_limit``. ``ratio_vs_smallest`` is global_s_per_million at a size over that at the smallest.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.dedup_children import run_child
from bench.dedup_corpus import BENCH_CACHE, DedupCorpusSpec, build_dedup_corpus, pipeline_config
from curate.errors import ConfigError

CHUNK_DOCS = 1_000_000
GLOBAL_DIR = "global"
# The global phase sees sketches only, whose size does not depend on a document's length: short documents
# (two passages of 100-300 characters) give it the same work per document for a fifth of the shard phase.
PASSAGE_CHARS = (100, 300)


def build_chunk(files: Sequence[Path], first: int, folder: Path, dedup: dict[str, Any], workers: int) -> Path:
    """The real shard phase over ``files`` into ``folder`` (sketches in _dedup/, parts in corpus/), once."""
    from curate.plan import build_plan
    from curate.run import run_shards

    done = folder / "chunk.json"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    plan = build_plan(pipeline_config(files, first, folder, dedup))
    run_shards(plan, "local", workers, progress=False)
    done.write_text(json.dumps({"first": first, "files": [str(f) for f in files]}))
    return folder


def assemble(chunks: Sequence[Path], out: Path) -> None:
    """A fresh output folder holding the chunks' sketch and corpus files as hard links."""
    shutil.rmtree(out, ignore_errors=True)
    for chunk in chunks:
        for folder in ("_dedup", "corpus"):
            for path in sorted((chunk / folder).rglob("*.parquet")):
                target = out / path.relative_to(chunk)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target)


def bench_global_phase(
    docs: Sequence[int],
    workers: int = 2,
    cache_dir: Path = BENCH_CACHE,
    dedup: dict[str, Any] | None = None,
    chunk_docs: int = CHUNK_DOCS,
    spec: DedupCorpusSpec | None = None,
) -> dict[str, Any]:
    """Figures of the global phase at each size in ``docs`` (multiples of ``chunk_docs``)."""
    from bench.machine import machine

    sizes = sorted(set(docs))
    spec = spec or DedupCorpusSpec(docs=sizes[-1], passage_min=PASSAGE_CHARS[0], passage_max=PASSAGE_CHARS[1])
    if spec.docs < sizes[-1] or chunk_docs % spec.shard_docs or any(n % chunk_docs for n in sizes):
        raise ConfigError(
            f"--global-phase sizes must be multiples of {chunk_docs:,} documents, at most the corpus's "
            f"{spec.docs:,}; pass --docs 1000000 --docs 4000000 ..."
        )
    dedup = dedup or {}
    cache_dir = cache_dir.resolve()
    per_chunk = chunk_docs // spec.shard_docs
    # A smaller generated corpus is the start of a larger one (same seed): chunks do not depend on its size.
    cache = cache_dir / GLOBAL_DIR / f"{replace(spec, docs=0).key()}-chunk{chunk_docs}-{_dedup_key(dedup)}"
    folders = [cache / f"chunk-{c:04d}" for c in range(sizes[-1] // chunk_docs)]
    shards: list[Path] = []
    if not all((folder / "chunk.json").exists() for folder in folders):
        shards = sorted(build_dedup_corpus(spec, cache_dir).glob("shard-*.jsonl.zst"))
    chunks = [
        build_chunk(shards[c * per_chunk : (c + 1) * per_chunk], c * per_chunk, folder, dedup, workers)
        for c, folder in enumerate(folders)
    ]
    at_start = machine()
    runs = []
    for size in sizes:
        count = size // chunk_docs
        out = cache_dir / "work" / f"global-{size}-{os.getpid()}"
        assemble(chunks[:count], out)
        job = {
            "kind": "global",
            "files": [f for chunk in chunks[:count] for f in _chunk_inputs(chunk)],
            "out": str(out),
            "dedup": dedup,
        }
        run = run_child(job)
        shutil.rmtree(out, ignore_errors=True)
        if "error" in run:
            raise RuntimeError(f"the global dedup phase failed at {size:,} documents: {run['error']}")
        runs.append(run)
    for key, ratio in (
        ("global_s_per_million", "ratio_vs_smallest"),
        ("cpu_s_per_million", "cpu_ratio_vs_smallest"),
    ):
        base = runs[0][key]
        for run in runs:
            run[ratio] = round(run[key] / base, 2) if base else None
    return {
        "runs": runs,
        "memory_limit": runs[0]["memory_limit"],
        "corpus": spec.key(),
        "machine": at_start,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }


def _chunk_inputs(chunk: Path) -> list[str]:
    """The JSONL shards a chunk was built from (the phase's plan names them as its inputs)."""
    return json.loads((chunk / "chunk.json").read_text())["files"]


def _dedup_key(dedup: dict[str, Any]) -> str:
    """Sketches depend on the sketch settings only; a short stable name for them."""
    from curate.dedup.index import sketch_parameters
    from curate.dedup.settings import DedupConfig

    return "-".join(f"{k}{v}" for k, v in sketch_parameters(DedupConfig.model_validate(dedup)).items())


def format_global_report(result: dict[str, Any]) -> str:
    lines = [
        f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"load {result['machine']['load_average_1m']} -> {result['load_average_1m_at_end']}; "
        f"dedup.memory_limit {result['memory_limit']}",
        "global dedup phase (run_dedup on cached real sketches):",
    ]
    for run in result["runs"]:
        steps = ", ".join(f"{name} {s['wall_s']}/{s['cpu_s']}" for name, s in run["steps_s"].items())
        lines.append(
            f"  {run['docs']:>10,} docs  {run['global_s']} s wall ({run['cpu_s']} s CPU)  "
            f"global_s_per_million {run['global_s_per_million']} (x{run['ratio_vs_smallest']}; CPU "
            f"{run['cpu_s_per_million']}, x{run['cpu_ratio_vs_smallest']})  "
            f"peak RSS {run['peak_rss_mb']} MB ({run['peak_above_imports_mb']} MB above "
            f"{run['rss_before_mb']} MB of imports)  steps (wall/CPU s): {steps}"
        )
    return "\n".join(lines)

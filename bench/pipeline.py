"""`curate bench pipeline`: read + normalize + tag + write throughput on real text, local and Ray.

The corpus is assembled from ../shared/data (book passages, Wikipedia, web shards) into gzip JSONL shards
in a cache, cycling through the sources with shifted cut points until it reaches the requested size.
Figures are per core: total throughput divided by the workers used.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.machine import machine, peak_rss_mb
from curate.config import load_config
from curate.errors import ConfigError
from curate.jsonl_files import write_jsonl
from curate.readers.batches import ShardSource, read_batches
from curate.readers.fields import FieldMap
from curate.readers.formats import infer_format
from curate.run import run_pipeline
from curate.textsources import book_passages, shared_data_dir, wikipedia_pages

BENCH_CACHE = Path(".cache/bench/pipeline")
SHARD_MB = 8


def real_documents(shared: Path) -> Iterator[dict[str, Any]]:
    """One pass over the real sources; each pass shifts book cut points so passages differ."""
    for round_no in range(1_000):
        for key, text in book_passages(shared / "domains" / "books", shift=round_no * 997):
            yield {"id": f"r{round_no}/books/{key}", "text": text}
        for title, text in wikipedia_pages():
            yield {
                "id": f"r{round_no}/wiki/{title}",
                "text": text,
                "url": f"https://en.wikipedia.org/wiki/{title}",
            }
        for path in sorted((shared / "web").glob("*.json*")):
            shard = ShardSource(path, path.name, infer_format(path) or "jsonl", FieldMap())
            for batch in read_batches(shard, 1000, 1 << 30):
                for row in batch.docs.select(["id", "text", "url"]).to_pylist():
                    yield {**row, "id": f"r{round_no}/web/{row['id']}"}


def build_corpus(megabytes: int, shard_mb: int = SHARD_MB, folder: Path = BENCH_CACHE) -> Path:
    shared = shared_data_dir()
    if shared is None:
        raise ConfigError("the pipeline benchmark needs ../shared/data (or CURATE_SHARED_DATA)")
    target = folder / f"{megabytes}mb-{shard_mb}mb-shards"
    if (target / "DONE").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    documents = real_documents(shared)
    for index in range(max(1, megabytes // shard_mb)):
        write_jsonl(target / f"shard-{index:04d}.jsonl.gz", _take_bytes(documents, shard_mb << 20))
    (target / "DONE").write_text("ok")
    return target


def _take_bytes(documents: Iterator[dict[str, Any]], limit: int) -> Iterator[dict[str, Any]]:
    size = 0
    for document in documents:
        yield document
        size += len(document["text"].encode())
        if size >= limit:
            return


def bench_pipeline(
    megabytes: int, workers: int, executors: list[str], shard_mb: int = SHARD_MB
) -> dict[str, Any]:
    """Peak RSS is reported so that memory bounds can be checked: with one worker the shard is processed
    in this process, so `--mb 1024 --shard-mb 1024 --workers 1` measures a single 1 GB shard."""
    corpus = build_corpus(megabytes, shard_mb).resolve()
    results: dict[str, Any] = {"machine": machine(), "corpus": str(corpus), "workers": workers, "runs": {}}
    for executor in executors:
        results["runs"][executor] = _timed_run(corpus, executor.strip(), workers)
    return results


def _timed_run(corpus: Path, executor: str, workers: int) -> dict[str, Any]:
    out = corpus.parent / f"out-{executor}"
    shutil.rmtree(out, ignore_errors=True)
    config_path = corpus.parent / "bench.yaml"
    config_path.write_text(
        f"inputs:\n  - path: {corpus}/*.jsonl.gz\n    name: bench\n"
        "stages:\n  - normalize: {}\n  - tag: {domain: {rules: [{domain: wiki, site: wikipedia.org}]}}\n"
    )
    started = time.perf_counter()
    manifest = run_pipeline(load_config(config_path, str(out)), executor, workers, progress=False)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    text_mb = manifest["totals"]["text_bytes"] / 1e6
    docs = manifest["totals"]["read"]
    shutil.rmtree(out, ignore_errors=True)
    return {
        "seconds": round(seconds, 2),
        "docs": docs,
        "text_mb": round(text_mb, 1),
        "docs_per_s": round(docs / seconds, 1),
        "mb_per_s": round(text_mb / seconds, 2),
        "docs_per_s_per_core": round(docs / seconds / workers, 1),
        "mb_per_s_per_core": round(text_mb / seconds / workers, 2),
        "peak_rss_mb": peak_rss_mb(),
    }

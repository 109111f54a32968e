"""`curate bench mix`: how fast a mixture is built from a curated corpus of at least 1 GB on disk.

The corpus is real text (bench.pipeline.build_corpus: books, Wikipedia and web shards from ../shared/data)
run through the curation pipeline once and cached, so repeated benchmarks time the mixer only. Figures
are MB/s of corpus Parquet on disk (what a mixer must scan) and of text written into the mixture.

Runs: `scan` (the peer: DuckDB reading every text once, the floor for any mixer), `estimate`
(chars_per_token, no tokenizer pass), and with `exact=True` `exact_cold` (tokenizer
pass over every candidate part, sidecars written) then `exact_warm` (the same mixture from the cached
counts), so the cost of exact counting and the value of its cache are both visible. Before those,
`exact_count_cold` times counting alone (`count_parts` over every part, no sidecar yet) in CPU seconds
of this process, every thread included (the tokenizer's and Arrow's): MB of text per core-second, next
to the tokenizer's own batch encoder (the reference path) on the first parts, whose counts must agree.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from bench.pipeline import build_corpus, machine
from curate.config import parse_config, resolve_paths
from curate.run import run_pipeline
from mixers.corpus import open_corpora
from mixers.db import connect
from mixers.sampler import build_mixture
from mixers.spec import TokenizerSpec, parse_spec
from mixers.tokens import SIDECAR_DIR, count_parts, count_tokens, make_counter, sidecar_path

BENCH_DIR = Path(".cache/bench/mix")
TEXT_PER_DISK = 2.6  # text MB per Parquet MB after curation (zstd), measured on these sources
BUDGET_FRACTION = 0.5
BENCH_VOCAB = 8192
REFERENCE_TEXT_MB = 16  # text the reference encoder counts (it is ~5x slower): enough for a stable rate


def disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet")) / 1e6


def bench_corpus(megabytes: int, workers: int, folder: Path = BENCH_DIR) -> Path:
    """A curated corpus with at least `megabytes` MB of Parquet parts, built once from real text."""
    out = (folder / f"corpus-{megabytes}mb").resolve()
    if (out / "manifest.json").is_file() and disk_mb(out / "corpus") >= megabytes:
        return out
    shutil.rmtree(out, ignore_errors=True)
    shards = build_corpus(math.ceil(megabytes * TEXT_PER_DISK)).resolve()
    raw = {
        "inputs": [{"path": str(shards / "*.jsonl.gz"), "name": "bench"}],
        "stages": [
            {"normalize": {}},
            {"tag": {"domain": {"rules": [{"domain": "wiki", "site": "wikipedia.org"}]}}},
        ],
    }
    config = resolve_paths(parse_config(raw, where="bench mix corpus"), base=shards, out=str(out))
    run_pipeline(config, "local", workers, progress=False)
    return out


def corpus_figures(corpus: Path) -> dict[str, Any]:
    parts = [str(p.path) for p in open_corpora([str(corpus)]).parts]
    with connect() as con:
        rows = con.execute(
            "SELECT domain, count(*), sum(n_chars), sum(strlen(text)) FROM read_parquet(?) GROUP BY domain",
            [parts],
        ).fetchall()
    return {
        "path": str(corpus),
        "disk_mb": round(disk_mb(corpus / "corpus"), 1),
        "parts": len(parts),
        "domains": {
            d: {"docs": int(n), "chars": int(c), "text_mb": round(b / 1e6, 1)} for d, n, c, b in rows
        },
    }


def bench_spec(corpus: Path, figures: dict[str, Any], tokenizer: dict[str, Any]) -> dict[str, Any]:
    """Half the corpus's (estimated) tokens, each domain in its natural share, behind a real predicate."""
    chars = {d: v["chars"] for d, v in figures["domains"].items()}
    total = sum(chars.values())
    return {
        "corpora": [str(corpus)],
        "budget": int(total / 4 * BUDGET_FRACTION),
        "seed": 0,
        "tokenizer": tokenizer,
        "max_epochs": 2,
        "where": "n_words >= 20",
        "domains": {d: {"weight": c / total} for d, c in chars.items()},
    }


def timed_mix(name: str, spec: dict[str, Any], corpus_mb: float, corpus_text_mb: float) -> dict[str, Any]:
    out = BENCH_DIR / f"mix-{name}"
    phases: dict[str, float] = {}
    started = time.perf_counter()
    manifest = build_mixture(parse_spec(spec, where=f"bench {name}"), out, timings=phases)
    seconds = time.perf_counter() - started
    mix_mb = disk_mb(out)
    with connect() as con:
        text_mb = con.execute(
            "SELECT sum(strlen(text)) / 1e6 FROM read_parquet(?)",
            [[str(out / f["path"]) for f in manifest["files"]]],
        ).fetchall()[0][0]
    shutil.rmtree(out, ignore_errors=True)
    return {
        "seconds": round(seconds, 2),
        "phases_s": phases,
        "corpus_mb_per_s": round(corpus_mb / seconds, 1),
        "corpus_text_mb_per_s": round(corpus_text_mb / seconds, 1),
        "mix_text_mb_per_s": round(text_mb / seconds, 1),
        "mix_docs": manifest["totals"]["documents"],
        "mix_tokens": manifest["totals"]["achieved_tokens"],
        "mix_text_mb": round(text_mb, 1),
        "mix_disk_mb": round(mix_mb, 1),
    }


def timed_scan(corpus: Path, corpus_mb: float) -> dict[str, Any]:
    """The peer: one DuckDB pass reading every text of the corpus, the I/O + decode floor of any mixer."""
    parts = [str(p.path) for p in open_corpora([str(corpus)]).parts]
    started = time.perf_counter()
    with connect() as con:
        con.execute("SELECT sum(strlen(text)) FROM read_parquet(?)", [parts]).fetchall()
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "corpus_mb_per_s": round(corpus_mb / seconds, 1)}


def cpu_seconds() -> float:
    """User + system CPU of this process, all threads (Rayon's, Arrow's, DuckDB's) included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_count(corpus: Path, tokenizer: Path, text_mb: float) -> dict[str, Any]:
    """Exact counts of every part from scratch (sidecars written), then the reference on the first parts."""
    shutil.rmtree(corpus / SIDECAR_DIR, ignore_errors=True)
    corpora = open_corpora([str(corpus)])
    counter = make_counter(TokenizerSpec(path=str(tokenizer)))
    cpu, started = cpu_seconds(), time.perf_counter()
    count_parts(corpora, corpora.parts, counter)
    cpu, wall = cpu_seconds() - cpu, time.perf_counter() - started
    reference = reference_count(corpora, counter)
    return {
        "text_mb": round(text_mb, 1),
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "text_mb_per_cpu_s": round(text_mb / cpu, 2),
        "reference_text_mb_per_cpu_s": reference["text_mb_per_cpu_s"],
        "speedup": round(text_mb / cpu / reference["text_mb_per_cpu_s"], 2),
        "reference_text_mb": reference["text_mb"],
        "reference_agrees": reference["agrees"],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def reference_count(corpora: Any, counter: Any) -> dict[str, Any]:
    """The tokenizer's batch encoder, 512 texts a call (the counting path before PieceCounter), over the
    first parts up to REFERENCE_TEXT_MB of text; `agrees` when its counts equal the sidecars'."""
    from trainer.tokenizer import eot_id

    tokenizer = counter.load()
    tokenizer.encode_special_tokens = True
    extra = 0 if eot_id(tokenizer) is None else 1
    text_mb, cpu, agrees = 0.0, 0.0, True
    for part in corpora.parts:
        texts = [t or "" for t in pq.read_table(part.path, columns=["text"])["text"].to_pylist()]
        started = cpu_seconds()
        counts = [count_tokens(tokenizer, texts[i : i + 512], extra) for i in range(0, len(texts), 512)]
        cpu += cpu_seconds() - started
        sidecar = pq.read_table(sidecar_path(part, corpora.roots[part.corpus], counter))["n_tokens"]
        agrees = agrees and bool((np.concatenate(counts) == sidecar.to_numpy()).all())
        text_mb += sum(len(t.encode()) for t in texts) / 1e6
        if text_mb >= REFERENCE_TEXT_MB:
            break
    return {"text_mb": round(text_mb, 1), "text_mb_per_cpu_s": round(text_mb / cpu, 2), "agrees": agrees}


def bench_mix(megabytes: int = 1024, workers: int = 2, exact: bool = False) -> dict[str, Any]:
    """MB/s to mix a corpus of >= `megabytes` MB on disk: estimate always, exact cold/warm on request."""
    corpus = bench_corpus(megabytes, workers)
    figures = corpus_figures(corpus)
    text_mb = sum(d["text_mb"] for d in figures["domains"].values())
    results: dict[str, Any] = {"machine": machine(), "corpus": figures, "runs": {}}
    estimate = bench_spec(corpus, figures, {"chars_per_token": 4.0})
    results["runs"]["scan"] = timed_scan(corpus, figures["disk_mb"])
    results["runs"]["estimate"] = timed_mix("estimate", estimate, figures["disk_mb"], text_mb)
    results["estimate_vs_scan"] = round(
        results["runs"]["scan"]["seconds"] / results["runs"]["estimate"]["seconds"], 3
    )
    if exact:
        from api.demo_mixture import corpus_tokenizer

        tokenizer = corpus_tokenizer(corpus, vocab_size=BENCH_VOCAB)
        results["runs"]["exact_count_cold"] = timed_count(corpus, tokenizer, text_mb)
        shutil.rmtree(corpus / SIDECAR_DIR, ignore_errors=True)
        spec = bench_spec(corpus, figures, {"path": str(tokenizer)})
        results["runs"]["exact_cold"] = timed_mix("exact", spec, figures["disk_mb"], text_mb)
        results["runs"]["exact_warm"] = timed_mix("exact", spec, figures["disk_mb"], text_mb)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return results

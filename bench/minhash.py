"""Throughput of MinHash signatures, ours against rensa and datasketch, on the same real documents.

Figures are per core: every peer runs with one thread (BLAS/OpenMP/Rayon/Arrow pools set to 1 before
the peers are imported) and the report carries CPU time next to wall time so a thread that slipped
through shows up as ``cpu_s > wall_s``. Shingling is included for everyone: ours from the raw strings,
the peers from the usual Python tokenisation (lowercase, ``[^\\W_]+`` words, space-joined 5-grams),
which is what a pipeline using them would run.

Inputs are real text from ``../shared/data`` (``CURATE_SHARED_DATA`` overrides, see
:mod:`curate.textsources`): Project Gutenberg books cut into ~5 KB passages plus the web shards'
documents. Nothing is copied anywhere.

``curate bench minhash`` is meant to call :func:`bench_minhash` and print its dict as JSON.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.machine import machine
from curate.dedup.minhash import MinHasher
from curate.errors import ConfigError
from curate.textsources import book_passages, shared_data_dir

_WORD_RE = re.compile(r"[^\W_]+")
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "RAYON_NUM_THREADS",
)


@contextlib.contextmanager
def _one_thread_everywhere() -> Iterator[None]:
    """Pin every pool a peer might use to one thread (the figures are per core), then restore them.

    Scoped to the benchmark so that importing or calling it (from the CLI, from a test) leaves the
    process as it was; Rayon reads its variable when rensa's pool first starts.
    """
    saved_env = {var: os.environ.get(var) for var in _THREAD_VARS}
    saved_arrow = pa.cpu_count(), pa.io_thread_count()
    for var in _THREAD_VARS:
        os.environ.setdefault(var, "1")
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    try:
        yield
    finally:
        for var, value in saved_env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        pa.set_cpu_count(saved_arrow[0])
        pa.set_io_thread_count(saved_arrow[1])


def web_documents(web_dir: Path) -> Iterator[str]:
    """The ``text`` field of every JSON-lines web shard (plain or gzipped)."""
    for path in sorted(web_dir.iterdir()):
        if not (path.name.endswith((".jsonl", ".json.gz", ".jsonl.gz"))):
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("text"), str):
                    yield record["text"]


def load_benchmark_texts(data_dir: Path | None = None, target_bytes: int = 20_000_000) -> list[str]:
    """All web documents plus ~5 KB book passages until ``target_bytes`` of UTF-8 text are reached."""
    data_dir = data_dir or shared_data_dir()
    if data_dir is None or not (data_dir / "domains" / "books").is_dir():
        raise ConfigError("benchmark data not found: set CURATE_SHARED_DATA to the shared data folder")
    web = data_dir / "web"
    texts = list(web_documents(web)) if web.is_dir() else []
    total = sum(len(t.encode("utf-8")) for t in texts)
    for _, passage in book_passages(data_dir / "domains" / "books", passage_chars=5000):
        if total >= target_bytes:
            break
        texts.append(passage)
        total += len(passage.encode("utf-8"))
    return texts


def python_shingles(text: str, ngram: int = 5) -> list[str]:
    """Word n-grams the way a Python pipeline feeding rensa or datasketch builds them."""
    words = _WORD_RE.findall(text.lower())
    if len(words) < ngram:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + ngram]) for i in range(len(words) - ngram + 1)]


def _ours(num_perm: int, ngram: int) -> Callable[[Sequence[str]], object]:
    hasher = MinHasher(num_perm=num_perm, bands=1, ngram=ngram)
    hasher.signatures(["warm up the Unicode tables once, as a long-running worker would"])
    return hasher.signatures


def _rensa(num_perm: int, ngram: int) -> Callable[[Sequence[str]], object] | None:
    try:
        from rensa import RMinHash
    except ImportError:
        return None

    def run(texts: Sequence[str]) -> object:
        shingles = [python_shingles(t, ngram) for t in texts]
        return RMinHash.digest_matrix_from_token_sets(shingles, num_perm=num_perm, seed=0)

    return run


def _datasketch(num_perm: int, ngram: int) -> Callable[[Sequence[str]], object] | None:
    try:
        from datasketch import MinHash
    except ImportError:
        return None

    def run(texts: Sequence[str]) -> object:
        out = []
        for t in texts:
            m = MinHash(num_perm=num_perm, seed=0)
            m.update_batch([s.encode("utf-8") for s in python_shingles(t, ngram)])
            out.append(m.hashvalues)
        return out

    return run


def _fresh_copies(texts: Sequence[str]) -> list[str]:
    """New str objects, so nobody profits from UTF-8 encodings cached on the strings by an earlier run."""
    return [t.encode("utf-8").decode("utf-8") for t in texts]


def _time(fn: Callable[[object], object], make_input: Callable[[], object], repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` wall and CPU seconds of ``fn``; its input is built afresh, untimed, each run."""
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        data = make_input()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        fn(data)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if wall < best_wall:
            best_wall, best_cpu = wall, cpu
    return {"wall_s": best_wall, "cpu_s": best_cpu}


def _figures(timing: dict[str, float], n_bytes: int, n_docs: int) -> dict[str, float]:
    """Throughput by wall clock and by CPU time; the CPU figure is the per-core one on a busy machine."""
    return {
        **{k: round(v, 4) for k, v in timing.items()},
        "mb_per_s": round(n_bytes / 1e6 / timing["wall_s"], 2),
        "mb_per_cpu_s": round(n_bytes / 1e6 / timing["cpu_s"], 2),
        "docs_per_s": round(n_docs / timing["wall_s"], 1),
    }


def _breakdown(texts: Sequence[str], n_bytes: int, num_perm: int, ngram: int, repeats: int) -> dict:
    """Where the end-to-end gap comes from: ours on an Arrow column (a pipeline's real input, so no
    str -> Arrow conversion) and rensa's kernel alone on shingle lists built beforehand (its Python
    shingling excluded). Not end-to-end figures; no ratios are taken from them."""
    ours = _ours(num_perm, ngram)
    out = {
        "ours_from_arrow": _figures(
            _time(ours, lambda: pa.array(texts, pa.large_string()), repeats), n_bytes, len(texts)
        )
    }
    try:
        from rensa import RMinHash
    except ImportError:
        return out
    shingles = [python_shingles(t, ngram) for t in texts]

    def kernel(prepared: object) -> object:
        return RMinHash.digest_matrix_from_token_sets(prepared, num_perm=num_perm, seed=0)

    out["rensa_kernel_only"] = _figures(_time(kernel, lambda: shingles, repeats), n_bytes, len(texts))
    return out


def bench_minhash(
    texts: Sequence[str] | None = None,
    num_perm: int = 112,
    ngram: int = 5,
    repeats: int = 3,
    datasketch_repeats: int = 1,
) -> dict:
    """MB/s and docs/s per core of ours, rensa (if installed) and datasketch on the same ``texts``.

    ``texts`` defaults to :func:`load_benchmark_texts` (>= 20 MB of real text). Ratios are ours / peer,
    so > 1 means we are faster: ``ratio_vs_*`` by wall clock, ``ratio_vs_*_cpu`` by CPU time, which is
    the fairer per-core figure when other processes share the machine (every peer is single-threaded,
    so CPU time <= wall time).
    """
    texts = list(texts) if texts is not None else load_benchmark_texts()
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    result: dict = {
        "docs": len(texts),
        "mb": round(n_bytes / 1e6, 3),
        "num_perm": num_perm,
        "ngram": ngram,
        "threads": 1,
        "machine": machine(),
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
    }
    with _one_thread_everywhere():
        peers = {
            "ours": (_ours(num_perm, ngram), repeats),
            "rensa": (_rensa(num_perm, ngram), repeats),
            "datasketch": (_datasketch(num_perm, ngram), datasketch_repeats),
        }
        for name, (fn, reps) in peers.items():
            timing = None if fn is None else _time(fn, lambda: _fresh_copies(texts), reps)
            result[name] = None if timing is None else _figures(timing, n_bytes, len(texts))
        result["breakdown"] = _breakdown(texts, n_bytes, num_perm, ngram, repeats)
    for name in ("rensa", "datasketch"):
        if result[name]:
            result[f"ratio_vs_{name}"] = round(result["ours"]["mb_per_s"] / result[name]["mb_per_s"], 2)
            result[f"ratio_vs_{name}_cpu"] = round(
                result["ours"]["mb_per_cpu_s"] / result[name]["mb_per_cpu_s"], 2
            )
    return result


if __name__ == "__main__":
    print(json.dumps(bench_minhash(), indent=2))

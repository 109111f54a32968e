"""Throughput of MinHash signatures, ours against rensa and datasketch, on the same real documents.

Figures are per core: every peer runs with one thread (BLAS/OpenMP/Rayon/Arrow pools set to 1 before
anything is imported) and the report carries CPU time next to wall time so a thread that slipped
through shows up as ``cpu_s > wall_s``. Shingling is included for everyone: ours from the raw strings,
the peers from the usual Python tokenisation (lowercase, ``[^\\W_]+`` words, space-joined 5-grams),
which is what a pipeline using them would run.

Inputs are real text from ``../shared/data`` (``CURATE_SHARED_DATA`` overrides): Project Gutenberg books
cut into ~5 KB passages plus the web shards' documents. Nothing is copied anywhere.

``curate bench minhash`` is meant to call :func:`bench_minhash` and print its dict as JSON.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import gzip  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from curate.dedup.minhash import MinHasher  # noqa: E402

_WORD_RE = re.compile(r"[^\W_]+")
_GUTENBERG_START = re.compile(r"\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG[^\n]*\n")
_GUTENBERG_END = re.compile(r"\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG")


def shared_data_dir() -> Path:
    """``$CURATE_SHARED_DATA`` or ``../shared/data`` beside the repository checkout."""
    env = os.environ.get("CURATE_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def _strip_gutenberg(text: str) -> str:
    """The book body between the Project Gutenberg header and licence footer (if they are there)."""
    start = _GUTENBERG_START.search(text)
    end = _GUTENBERG_END.search(text)
    return text[start.end() if start else 0 : end.start() if end else len(text)]


def book_passages(books_dir: Path, passage_chars: int = 5000) -> Iterator[str]:
    """Books cut at paragraph breaks into passages of at least ``passage_chars`` characters."""
    for path in sorted(books_dir.glob("*.txt")):
        body = _strip_gutenberg(path.read_text(encoding="utf-8", errors="replace"))
        current: list[str] = []
        size = 0
        for para in body.split("\n\n"):
            current.append(para)
            size += len(para) + 2
            if size >= passage_chars:
                yield "\n\n".join(current)
                current, size = [], 0
        if current:
            yield "\n\n".join(current)


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
    """All web documents plus book passages until ``target_bytes`` of UTF-8 text are reached."""
    data_dir = data_dir or shared_data_dir()
    books, web = data_dir / "domains" / "books", data_dir / "web"
    if not books.is_dir():
        raise FileNotFoundError(f"benchmark data not found: {books} (set CURATE_SHARED_DATA)")
    texts = list(web_documents(web)) if web.is_dir() else []
    total = sum(len(t.encode("utf-8")) for t in texts)
    for passage in book_passages(books):
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


def _time(fn: Callable[[Sequence[str]], object], texts: Sequence[str], repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` wall and CPU seconds, each run on fresh string objects."""
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        fresh = _fresh_copies(texts)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        fn(fresh)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if wall < best_wall:
            best_wall, best_cpu = wall, cpu
    return {"wall_s": best_wall, "cpu_s": best_cpu}


def bench_minhash(
    texts: Sequence[str] | None = None,
    num_perm: int = 112,
    ngram: int = 5,
    repeats: int = 3,
    datasketch_repeats: int = 1,
) -> dict:
    """MB/s and docs/s per core of ours, rensa (if installed) and datasketch on the same ``texts``.

    ``texts`` defaults to :func:`load_benchmark_texts` (>= 20 MB of real text). Ratios are ours / peer,
    so > 1 means we are faster.
    """
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    texts = list(texts) if texts is not None else load_benchmark_texts()
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    peers = {
        "ours": (_ours(num_perm, ngram), repeats),
        "rensa": (_rensa(num_perm, ngram), repeats),
        "datasketch": (_datasketch(num_perm, ngram), datasketch_repeats),
    }
    result: dict = {
        "docs": len(texts),
        "mb": round(n_bytes / 1e6, 3),
        "num_perm": num_perm,
        "ngram": ngram,
        "threads": 1,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
    }
    for name, (fn, reps) in peers.items():
        if fn is None:
            result[name] = None
            continue
        timing = _time(fn, texts, reps)
        result[name] = {
            **{k: round(v, 4) for k, v in timing.items()},
            "mb_per_s": round(n_bytes / 1e6 / timing["wall_s"], 2),
            "docs_per_s": round(len(texts) / timing["wall_s"], 1),
        }
    for name in ("rensa", "datasketch"):
        if result[name]:
            result[f"ratio_vs_{name}"] = round(result["ours"]["mb_per_s"] / result[name]["mb_per_s"], 2)
    return result


if __name__ == "__main__":
    print(json.dumps(bench_minhash(), indent=2))

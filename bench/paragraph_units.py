"""Paragraph-dedup hashing speed: characters per CPU-second of the per-shard unit sketch, one core.

Ours is :func:`curate.dedup.paragraphs.unit_sketch` on Arrow batches of `batch_docs` documents (units
found, normalised, hashed, countable ones kept, the sketch table built). The peer, in the same run on
the same texts, is the obvious Python way CCNet-style pipelines do it: split into lines, and per line
lower-case, digits to 0, punctuation stripped by a regex, spaces collapsed, then a hash (blake2b, 8
bytes). The peer does less (no accent stripping, no sketch table), so the ratio flatters it slightly.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from bench.minhash import _one_thread_everywhere
from curate.dedup.paragraphs import unit_sketch
from curate.dedup.settings import ParagraphConfig

_DIGITS = re.compile(r"\d")
_PUNCT = re.compile(r"[^\w\s]|_")


def python_line_hashes(text: str) -> list[bytes]:
    """Per line in Python: lower, digits to 0, punctuation out, spaces collapsed, 8-byte blake2b."""
    out = []
    for line in text.split("\n"):
        form = " ".join(_PUNCT.sub("", _DIGITS.sub("0", line.lower())).split())
        if form:
            out.append(hashlib.blake2b(form.encode(), digest_size=8).digest())
    return out


def _batches(texts: Sequence[str], batch_docs: int) -> list[pa.Table]:
    return [
        pa.table(
            {
                "id": [str(i) for i in range(start, min(start + batch_docs, len(texts)))],
                "source": ["bench"] * len(texts[start : start + batch_docs]),
                "domain": ["web"] * len(texts[start : start + batch_docs]),
                "text": pa.array(texts[start : start + batch_docs], pa.large_string()),
            }
        )
        for start in range(0, len(texts), batch_docs)
    ]


def _best_cpu_seconds(run: Any, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return max(best, 1e-9)


def bench_paragraph_hashing(
    texts: Sequence[str], repeats: int = 3, batch_docs: int = 2000, unit: str = "line"
) -> dict[str, Any]:
    chars = sum(len(t) for t in texts)
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    config = ParagraphConfig(enabled=True, unit=unit)  # type: ignore[arg-type]
    batches = _batches(texts, batch_docs)
    with _one_thread_everywhere():
        unit_sketch(batches[0].slice(0, 1), config)  # Unicode tables built once, as in a worker
        ours = _best_cpu_seconds(lambda: [unit_sketch(b, config) for b in batches], repeats)
        peer = _best_cpu_seconds(lambda: [python_line_hashes(t) for t in texts], repeats)
    return {
        "docs": len(texts),
        "chars": chars,
        "mb": round(mb, 2),
        "unit": unit,
        "ours": {"mchars_per_cpu_s": round(chars / ours / 1e6, 2), "mb_per_cpu_s": round(mb / ours, 2)},
        "python_per_line": {
            "mchars_per_cpu_s": round(chars / peer / 1e6, 2),
            "mb_per_cpu_s": round(mb / peer, 2),
        },
        "ratio_vs_python_per_line": round(peer / ours, 2),
    }

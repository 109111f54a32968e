"""``curate bench critical-ratio``: the critical mixture ratio of a domain at several budgets, on real text.

The environment is `curate bench mixing`'s (six domains of package text and ../shared/data, the same
proxy); the domain defaults to ``math`` (``code`` without ../shared/data). Every figure is a function
of the seeds; the report goes to OUT/bench-critical-ratio.json and the table is printed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.machine import machine
from bench.mixing_textdata import available_domains, cached_text_shards
from mixers.strategies.critical_ratio import DEFAULT_RATIOS, CriticalRatioSearch, find_critical_ratio
from mixers.strategies.environment import ProxyConfig, ProxyEnvironment
from mixers.strategies.parallel import Runner

DOCS_PER_DOMAIN, MAX_CHARS, VOCAB = 120, 3000, 512


def bench_critical_ratio(
    out: Path,
    domain: str | None = None,
    budgets: tuple[int, ...] = (40, 120, 360),
    tolerance: float = 0.01,
    seeds: int = 3,
    base_steps: int = 200,
    ratios: tuple[float, ...] = DEFAULT_RATIOS,
    parallel: bool = False,
) -> dict[str, Any]:
    domains = available_domains()
    shards = cached_text_shards(domains, DOCS_PER_DOMAIN, MAX_CHARS, VOCAB)
    env = ProxyEnvironment.open(shards, ProxyConfig())
    chosen = domain or ("math" if "math" in domains else "code")
    search = CriticalRatioSearch(chosen, budgets, tolerance, ratios, base_steps, tuple(range(seeds)))
    started, cpu = time.perf_counter(), time.process_time()
    report = find_critical_ratio(env, search, Runner.create(parallel))
    figures = {
        **report,
        "environment": env.describe(),
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds_driver": round(time.process_time() - cpu, 1),
        "machine": machine(),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-critical-ratio.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures

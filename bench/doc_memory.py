"""`curate bench memory`: peak RSS that one huge document costs each stage, the dedup units and a whole run.

Why: memory must follow the batch settings whatever the input. A stage that builds a Python object per
word, or an int64 array per character, turns one 50 MB document into gigabytes; this benchmark finds
such stages and records, per document size, how many bytes of RSS each adds per character of text.

Every figure comes from a fresh interpreter (`python -m bench.doc_memory UNIT CHARS`), so allocations of
one measurement (and Python's arenas) never inflate the next. In the child, imports, stage setup and the
input batch come first; then the kernel's peak-RSS mark is reset (`/proc/self/clear_refs`), the unit runs
on the batch, and the figure is the new peak minus the resident size just before. The whole-run figure is
the absolute peak of a `curate run` (demo stage chain plus dedup, one worker) on a shard holding the one
document. The document is real text: the books of ../shared/data joined (cycled past their total size).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.machine import machine, peak_rss_mb
from curate.errors import ConfigError
from curate.textsources import shared_data_dir

MB = 1 << 20
"""Figures are in MiB (as `peak_rss_mb`); document sizes are in millions of characters."""
MILLION = 1_000_000
DEFAULT_SIZES_MB = (1, 10, 50)
STAGES = ["normalize", "tag", "langid", "heuristics", "perplexity", "harmful_ppl", "toxicity", "quality"]
DEDUP_UNITS = ["dedup_sketch", "dedup_lines"]
MODELS = {
    "perplexity": "wiki-5gram",
    "harmful_ppl": "harmful-5gram",
    "toxicity": "toxicity",
    "quality": "quality",
}
DEMO_CHAIN_PARAMS: dict[str, dict[str, Any]] = {
    "normalize": {},
    "tag": {},
    "langid": {"min_score": 0.0},
    "heuristics": {"mode": "annotate"},
    "perplexity": {},
    "harmful_ppl": {"drop_below": None},
    "toxicity": {},
    "quality": {},
}
"""The demo's stage chain (api.demo.demo_stages) with nothing dropped, so every stage sees the document."""
CHILD_TIMEOUT_S = 1800


# ------------------------------------------------------------------------------------------ the document


def books_dir() -> Path:
    shared = shared_data_dir()
    books = shared / "domains" / "books" if shared is not None else None
    if books is None or not books.is_dir():
        raise ConfigError("the memory benchmark needs ../shared/data/domains/books (or CURATE_SHARED_DATA)")
    return books


def real_document(chars: int) -> str:
    """`chars` characters of real prose: the books joined by blank lines, cycled when they run out."""
    paths = sorted(books_dir().glob("*.txt"))
    parts: list[str] = []
    size = 0
    while size < chars:
        for path in paths:
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            parts.append(text[: chars - size])
            size += len(parts[-1]) + 2
            if size >= chars:
                break
    return "\n\n".join(parts)[:chars]


def document_batch(text: str):
    """One-row batch in the pipeline's schema, as a reader would hand it to the first stage."""
    import pyarrow as pa

    from curate.schema import BASE_SCHEMA, conform

    table = pa.table(
        {
            "id": ["big-doc"],
            "text": pa.array([text], pa.large_string()),
            "source": ["bench/big.jsonl"],
            "url": ["https://example.org/big-doc"],
        }
    )
    return conform(table, BASE_SCHEMA)


# ----------------------------------------------------------------------------------------- peak memory


def resident_bytes() -> int:
    """Current resident set size (VmRSS)."""
    return _status_kb("VmRSS") * 1024


def peak_bytes() -> int:
    """Peak resident set size since start or the last reset_peak() (VmHWM, what ru_maxrss reports)."""
    return max(_status_kb("VmHWM") * 1024, 0)


def reset_peak() -> bool:
    """Lower the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def measure(work: Callable[[], Any]) -> dict[str, Any]:
    """Run `work` once; report the RSS it added at its peak over the resident size before it."""
    import gc

    gc.collect()
    before = resident_bytes()
    if not reset_peak():  # fall back to the lifetime peak, which may include the set-up
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    extra = max(peak_bytes() - before, 0)
    return {"extra_mb": round(extra / MB, 1), "seconds": round(seconds, 2), "base_mb": round(before / MB, 1)}


# ------------------------------------------------------------------------------------------- the units


def model_missing(unit: str) -> str | None:
    """The registry model a stage needs when it is not trained yet (the stage is then not measured)."""
    from filters.model_registry import find_model

    name = MODELS.get(unit)
    return None if name is None or find_model(name) is not None else name


def stage_work(unit: str, chars: int) -> Callable[[], Any]:
    """Set up one stage (model loaded) and its input batch; return the call to measure."""
    from curate.stages.registry import get_stage

    cls = get_stage(unit)
    stage = cls(cls.Params(**DEMO_CHAIN_PARAMS.get(unit, {})))
    stage.setup()
    batch = document_batch(real_document(chars))
    return lambda: stage.process(batch)


def dedup_work(unit: str, chars: int) -> Callable[[], Any]:
    """The per-shard dedup sketch (exact key, MinHash bands) or CCNet line units of the document."""
    from curate.dedup.paragraphs import unit_sketch
    from curate.dedup.settings import DedupConfig, ParagraphConfig
    from curate.dedup.sketch import hasher_for, sketch_batch

    batch = document_batch(real_document(chars))
    if unit == "dedup_sketch":
        hasher = hasher_for(DedupConfig())
        return lambda: sketch_batch(batch, hasher)
    config = ParagraphConfig(enabled=True)
    return lambda: unit_sketch(batch, config)


def child_main(unit: str, chars: int) -> None:
    """Entry point of one measurement (a fresh interpreter): prints one JSON line."""
    if unit in STAGES and (missing := model_missing(unit)):
        print(json.dumps({"skipped": f"model {missing!r} is not trained (curate models ...)"}))
        return
    work = dedup_work(unit, chars) if unit in DEDUP_UNITS else stage_work(unit, chars)
    figures = measure(work)
    figures["bytes_per_char"] = round(figures["extra_mb"] * MB / chars, 2)
    print(json.dumps(figures))


# ------------------------------------------------------------------------------------------ whole run


def run_config(folder: Path, chars: int) -> tuple[Path, list[str]]:
    """A shard holding the one document and a config running the demo's chain (trained models only)."""
    import yaml

    from curate.config import PipelineConfig
    from curate.jsonl_files import write_jsonl

    shard = folder / "in" / "big.jsonl.gz"
    shard.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(
        shard, iter([{"id": "big-doc", "text": real_document(chars), "url": "https://example.org/x"}])
    )
    stages = [{name: params} for name, params in DEMO_CHAIN_PARAMS.items() if not model_missing(name)]
    config: dict[str, Any] = {"inputs": [{"path": str(shard), "name": "big"}], "stages": stages, "dedup": {}}
    if "max_doc_chars" in PipelineConfig.model_fields:  # the reader's limit, raised to let the document in
        config["max_doc_chars"] = chars + 1
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, [next(iter(stage)) for stage in stages]


def run_main(chars: int) -> None:
    """One `curate run` (local executor, one worker, in this process) on the document: absolute peak RSS."""
    from curate.config import load_config
    from curate.run import run_pipeline

    with tempfile.TemporaryDirectory(prefix="curate-bench-memory-") as tmp:
        folder = Path(tmp)
        path, stages = run_config(folder, chars)
        config = load_config(path, str(folder / "out"))
        started = time.perf_counter()
        manifest = run_pipeline(config, "local", 1, progress=False)
        seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "peak_mb": peak_rss_mb(),
                "seconds": round(seconds, 2),
                "kept": manifest["totals"].get("kept"),
                "read": manifest["totals"].get("read"),
                "stages": stages,
            }
        )
    )


# ------------------------------------------------------------------------------------------- driver


def run_child(unit: str, chars: int) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.doc_memory", unit, str(chars)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit {result.returncode}", "exit": result.returncode}
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_memory(
    sizes_mb: list[float], units: list[str] | None = None, whole_run: bool = True
) -> dict[str, Any]:
    """{unit: {size: figures}} for every stage and dedup unit, plus the whole run, per document size."""
    books_dir()  # fail early, in one line, when the data is absent
    units = units or STAGES + DEDUP_UNITS
    figures: dict[str, Any] = {"machine": machine(), "sizes_mb": sizes_mb, "units": {}, "run": {}}
    for size in sizes_mb:
        chars = int(size * MILLION)
        for unit in units:
            figures["units"].setdefault(unit, {})[f"{size:g}MB"] = run_child(unit, chars)
        if whole_run:
            figures["run"][f"{size:g}MB"] = run_child("run", chars)
    return figures


def main(argv: list[str]) -> None:
    unit, chars = argv[0], int(argv[1])
    if unit == "run":
        run_main(chars)
    else:
        child_main(unit, chars)


if __name__ == "__main__":
    main(sys.argv[1:])

"""`curate bench filters`: docs/s and MB/s per core of every filter stage and of the whole annotate chain.

On one corpus (any JSONL shard or folder of shards given with `--input`, else >= 100 MB of real text that
`bench.pipeline.build_corpus` assembles from ../shared/data), this measures:

- each stage alone (normalize, tag, heuristics, langid, perplexity, harmful_ppl, toxicity, quality), every
  one on the documents as read, batch by batch as the executors hand them over (2000 docs / 64 MB);
- the whole chain in that order in annotate mode: every stage sees every document (drop reasons are
  ignored and the stages that can are configured not to compute them), the output of one stage feeding
  the next, as in a pipeline run, so later stages reuse what earlier ones derived from the batch's text
  (`filters.batch_memo`: the CCNet normalisation, classifier lines, quality's KenLM perplexities); a
  stage alone gets an empty memo for every batch;
- when `datatrove` (and spaCy) are importable, DataTrove's FineWeb chain (GopherRepetition, GopherQuality,
  C4Quality, FineWebQuality, see `bench.rule_chain.datatrove_chain`) on an evenly spaced subset of the
  same documents (`peer_docs`; it runs at ~50 docs/s), next to our heuristics stage and our annotate chain
  timed on exactly that subset, so the ratios compare like with like.

"Per core" is CPU time of this process (`time.process_time`, all its threads) with Arrow's pool held to one
thread and the usual thread-count variables at 1 (`single_thread`): the figure does not move when other
processes load a shared machine, unlike wall time (reported too, with the load average before and after).
Model loading (`setup()`) is timed separately and excluded, as a pipeline worker loads once. Every rate
has the same denominator: the UTF-8 bytes and the count of the documents as read.

A stage whose model is not trained is skipped with the command that trains it; `annotate_complete` then
says false, so an incomplete chain is never mistaken for the full one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.machine import machine
from bench.rule_chain import datatrove_chain
from curate.errors import ConfigError
from curate.readers.batches import ShardSource, read_batches
from curate.readers.fields import FieldMap
from curate.readers.formats import infer_format
from curate.stages.base import Stage
from curate.stages.registry import get_stage
from filters import batch_memo

SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "BLIS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
"""Set while the benchmark runs, for thread pools started in it (spaCy's, a model library's)."""

ANNOTATE_CHAIN = (
    "normalize",
    "tag",
    "heuristics",
    "langid",
    "perplexity",
    "harmful_ppl",
    "toxicity",
    "quality",
)
MODEL_STAGES = {"perplexity", "harmful_ppl", "toxicity", "quality"}
ANNOTATE_PARAMS: dict[str, dict[str, Any]] = {
    "heuristics": {"mode": "annotate"},
    "langid": {"min_score": 0.0},
    "harmful_ppl": {"drop_below": None},
}
"""Params that keep each stage from flagging anything; the rest run with their pipeline defaults."""

BATCH_DOCS = 2000  # the executors' defaults (curate.config: batch_docs, batch_mb)
BATCH_MB = 64
DEFAULT_PEER_DOCS = 2000
HEURISTICS = "heuristics"
PEER_CHAIN = "GopherRepetition + GopherQuality + C4Quality(filter_no_terminal_punct=False) + FineWebQuality"


# ---------------------------------------------------------------------------------------------- input


def input_files(path: Path) -> list[Path]:
    """A JSONL shard (plain, gzip or zstd), or every JSONL shard directly in a folder, sorted."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and infer_format(p) == "jsonl")
        if files:
            return files
        raise ConfigError(f"no JSONL shard (.jsonl, .json, .ndjson, optionally .gz/.zst) in {path}")
    raise ConfigError(f"input {path} does not exist")


def read_corpus(
    files: Sequence[Path], max_mb: float | None = None, batch_docs: int = BATCH_DOCS
) -> tuple[list[pa.Table], int]:
    """Document batches as the executors build them, up to about `max_mb` MB of text (a prefix), and how
    many records were unreadable or empty (they never reach a stage, so they are not measured)."""
    budget = max_mb * 1e6 if max_mb else float("inf")
    batches: list[pa.Table] = []
    rejected, size = 0, 0
    for path in files:
        shard = ShardSource(path, path.name, "jsonl", FieldMap())
        for read in read_batches(shard, batch_docs, BATCH_MB << 20):
            rejected += read.rejects.num_rows
            docs = read.docs
            if docs.num_rows == 0:
                continue
            sizes = pc.binary_length(docs.column("text")).to_numpy()
            if size + sizes.sum() > budget:
                keep = int(np.searchsorted(np.cumsum(sizes), budget - size, side="left")) + 1
                docs, sizes = docs.slice(0, keep), sizes[:keep]
            batches.append(docs)
            size += int(sizes.sum())
            if size >= budget:
                return batches, rejected
    return batches, rejected


def corpus_figures(batches: Sequence[pa.Table]) -> dict[str, Any]:
    docs = sum(b.num_rows for b in batches)
    size = sum(int(pc.sum(pc.binary_length(b.column("text"))).as_py() or 0) for b in batches)
    return {"docs": docs, "mb": round(size / 1e6, 3), "mean_doc_kb": round(size / max(docs, 1) / 1e3, 2)}


# --------------------------------------------------------------------------------------------- stages


def build_stages(
    names: Sequence[str], models_home: Path | None = None
) -> tuple[dict[str, Stage], dict[str, float], dict[str, str]]:
    """Each stage built with annotate params and set up; its setup seconds; and the stages skipped, with
    why (a model that is not trained names the command that trains it)."""
    stages: dict[str, Stage] = {}
    setup_seconds: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name in names:
        params = dict(ANNOTATE_PARAMS.get(name, {}))
        if name in MODEL_STAGES and models_home is not None:
            params["models_dir"] = str(models_home)
        cls = get_stage(name)
        try:
            stage = cls(cls.Params.model_validate(params))
            started = time.perf_counter()
            stage.setup()
        except (ValueError, FileNotFoundError) as error:  # pydantic's ValidationError is a ValueError
            skipped[name] = _one_line(error)
            continue
        setup_seconds[name] = round(time.perf_counter() - started, 3)
        stages[name] = stage
    return stages, setup_seconds, skipped


def models_used(built: dict[str, Stage]) -> dict[str, dict[str, Any]]:
    """Which registry model each model stage ran with (and whether toxicity fell back to its word list)."""
    used = {}
    for name, stage in built.items():
        if name in MODEL_STAGES:
            params = stage.params
            used[name] = params.model_dump(mode="json", include={"model", "models_dir", "ppl_model"})
            if hasattr(params, "uses_wordlist_only"):
                used[name]["wordlist_only"] = params.uses_wordlist_only()
    return used


def _one_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if "curate models" in line or "not in" in line]
    return (useful or lines or [type(error).__name__])[-1]


def time_stage(stage: Stage, batches: Sequence[pa.Table]) -> dict[str, float]:
    """CPU and wall seconds of one stage over every batch (outputs are discarded). The shared per-batch
    memo is emptied before each batch: a stage alone has no earlier stage to reuse from."""
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in batches:
        batch_memo.clear()
        stage.process(batch)
    return {"cpu_seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall}


def time_chain(stages: Sequence[Stage], batches: Sequence[pa.Table]) -> dict[str, Any]:
    """The stages in order, each fed the previous one's table, no row dropped; total and per-stage CPU.
    Later stages reuse what earlier ones derived from the same batch (filters.batch_memo), as in a run."""
    per_stage = dict.fromkeys((s.name for s in stages), 0.0)
    batch_memo.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in batches:
        table = batch
        for stage in stages:
            started = time.process_time()
            table = stage.process(table).table
            per_stage[stage.name] += time.process_time() - started
    return {
        "cpu_seconds": time.process_time() - cpu,
        "wall_seconds": time.perf_counter() - wall,
        "per_stage_cpu_seconds": {name: round(seconds, 3) for name, seconds in per_stage.items()},
    }


def rates(timing: dict[str, Any], corpus: dict[str, Any]) -> dict[str, Any]:
    cpu = max(timing["cpu_seconds"], 1e-9)
    return {
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in timing.items()},
        "docs_s_per_core": round(corpus["docs"] / cpu, 1),
        "mb_s_per_core": round(corpus["mb"] / cpu, 3),
    }


def warm_up(stages: Iterable[Stage], batch: pa.Table) -> None:
    """One small untimed call per stage, so lazily built tables do not count against the first batch."""
    sample = batch.slice(0, min(8, batch.num_rows))
    for stage in stages:
        stage.process(sample)


# ------------------------------------------------------------------------------------------ benchmark


def bench_filters(
    input_path: Path | None = None,
    *,
    mb: float = 100.0,
    peer_docs: int | None = DEFAULT_PEER_DOCS,
    datatrove: bool | None = None,
    stages: Sequence[str] = ANNOTATE_CHAIN,
    models_home: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Per-core docs/s and MB/s of each stage alone, of the whole annotate chain and (when importable, or
    when `datatrove=True`) of DataTrove's FineWeb chain on `peer_docs` evenly spaced documents
    (None or <= 0: all of them), with the ratios measured on that same subset.

    `input_path`: a JSONL shard or a folder of them; None builds (or reuses) the real-text corpus of
    `curate bench pipeline` with `mb` megabytes. With an input, `mb` caps the text read (a prefix).
    """
    if input_path is None:
        from bench.pipeline import build_corpus

        log(f"assembling {mb:g} MB of real text from ../shared/data (cached)")
        input_path = build_corpus(int(np.ceil(mb)))
    files = input_files(Path(input_path))
    batches, unreadable = read_corpus(files, mb)
    corpus = corpus_figures(batches)
    if corpus["docs"] == 0:
        raise ValueError(f"{input_path} holds no readable document with text")
    corpus.update(path=str(Path(input_path).resolve()), files=len(files), unreadable_or_empty=unreadable)
    log(f"corpus: {corpus['docs']} docs, {corpus['mb']} MB from {len(files)} file(s)")

    result: dict[str, Any] = {"machine": machine(), "corpus": corpus}
    with single_thread():
        threads = {key: os.environ[key] for key in SINGLE_THREAD_ENV}
        result["threads"] = {"arrow_cpu_count": pa.cpu_count(), **threads}
        built, setup_seconds, skipped = build_stages(stages, models_home)
        chain = [built[name] for name in stages if name in built]
        warm_up(chain, batches[0])
        result["stages"] = {}
        for stage in chain:
            log(f"timing {stage.name} alone")
            figures = rates(time_stage(stage, batches), corpus)
            result["stages"][stage.name] = {**figures, "setup_seconds": setup_seconds[stage.name]}
        result["skipped"] = skipped
        result["models"] = models_used(built)
        log(f"timing the annotate chain: {', '.join(s.name for s in chain)}")
        result["chain"] = {"stages": [s.name for s in chain], **rates(time_chain(chain, batches), corpus)}
        result["annotate_complete"] = not skipped and list(stages) == list(ANNOTATE_CHAIN)
        if HEURISTICS in result["stages"]:
            result["heuristics_mb_s_per_core"] = result["stages"][HEURISTICS]["mb_s_per_core"]
            result["heuristics_docs_s_per_core"] = result["stages"][HEURISTICS]["docs_s_per_core"]
        result["annotate_mb_s_per_core"] = result["chain"]["mb_s_per_core"]
        result["annotate_docs_s_per_core"] = result["chain"]["docs_s_per_core"]
        if datatrove is None:
            datatrove = datatrove_available()
        if datatrove:
            result["peer"] = _peer(batches, built, chain, peer_docs, log)
            for key in ("heuristics_vs_datatrove", "annotate_vs_datatrove"):
                if key in result["peer"]:
                    result[key] = result["peer"][key]
        else:
            result["peer"] = {"skipped": "datatrove or spacy not importable: pip install -e '.[bench]'"}
    result["machine"]["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    return result


def _peer(
    batches: Sequence[pa.Table],
    built: dict[str, Stage],
    chain: Sequence[Stage],
    peer_docs: int | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """DataTrove's FineWeb chain and ours, on the same evenly spaced documents."""
    table = pa.concat_tables(batches)
    if peer_docs and 0 < peer_docs < table.num_rows:
        table = table.take(np.unique(np.linspace(0, table.num_rows - 1, peer_docs).round().astype(np.int64)))
    subset = table.to_batches(max_chunksize=BATCH_DOCS)
    subset = [pa.Table.from_batches([b]) for b in subset]
    figures = corpus_figures(subset)
    texts = table.column("text").to_pylist()
    log(f"timing DataTrove's FineWeb chain on {figures['docs']} docs ({figures['mb']} MB)")
    datatrove_chain(texts[:4])  # import and build spaCy's tokenizer outside the timing
    cpu, wall = time.process_time(), time.perf_counter()
    decisions = datatrove_chain(texts)
    timing = {"cpu_seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall}
    peer: dict[str, Any] = {
        "chain": PEER_CHAIN,
        "corpus": figures,
        "datatrove": rates(timing, figures),
        "datatrove_kept_frac": round(float(np.mean([d is None for d in decisions])), 4),
    }
    if HEURISTICS in built:
        peer["heuristics_same_docs"] = rates(time_stage(built[HEURISTICS], subset), figures)
        peer["heuristics_vs_datatrove"] = _ratio(peer["heuristics_same_docs"], peer["datatrove"])
    peer["annotate_same_docs"] = rates(time_chain(chain, subset), figures)
    peer["annotate_vs_datatrove"] = _ratio(peer["annotate_same_docs"], peer["datatrove"])
    return peer


def _ratio(ours: dict[str, Any], theirs: dict[str, Any]) -> float:
    """Speed ratio as CPU seconds (the rounded MB/s of a slow peer would make the ratio coarse)."""
    return round(theirs["cpu_seconds"] / max(ours["cpu_seconds"], 1e-9), 2)


def datatrove_available() -> bool:
    try:
        import datatrove.pipeline.filters  # noqa: F401
        import spacy  # noqa: F401  (DataTrove's English word tokenizer)
    except ImportError:
        return False
    return True


@contextmanager
def single_thread() -> Iterator[None]:
    """Arrow's pool at one thread and SINGLE_THREAD_ENV set, both restored afterwards. Pools that already
    run (numpy's BLAS is loaded before this) keep their size, but the stages do not use them; and CPU time
    counts every thread of the process, so a stray thread could only lower the figures, never raise them."""
    previous_env = {key: os.environ.get(key) for key in SINGLE_THREAD_ENV}
    previous_threads = pa.cpu_count()
    os.environ.update(SINGLE_THREAD_ENV)
    pa.set_cpu_count(1)
    try:
        yield
    finally:
        pa.set_cpu_count(previous_threads)
        for key, value in previous_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --------------------------------------------------------------------------------------------- report


def format_table(result: dict[str, Any]) -> str:
    """The figures as a plain table for a terminal (the CLI prints JSON with --json)."""
    corpus, machine = result["corpus"], result["machine"]
    lines = [
        f"corpus  {corpus['path']}: {corpus['docs']} docs, {corpus['mb']} MB "
        f"(mean {corpus['mean_doc_kb']} kB), {corpus['files']} file(s)",
        f"machine {machine['cpu']}, {machine['cores']} cores, load {machine['load_average_1m']}; "
        "per core = CPU seconds of this process, one thread",
        "",
        f"{'stage':<34}{'docs/s/core':>12}{'MB/s/core':>11}{'cpu s':>9}{'wall s':>9}",
    ]

    def row(label: str, figures: dict[str, Any]) -> str:
        return (
            f"{label:<34}{figures['docs_s_per_core']:>12,.1f}{figures['mb_s_per_core']:>11.3f}"
            f"{figures['cpu_seconds']:>9.1f}{figures['wall_seconds']:>9.1f}"
        )

    for name, figures in result["stages"].items():
        lines.append(row(name, figures))
    lines.append(row("annotate chain (all above)", result["chain"]))
    for name, reason in result.get("skipped", {}).items():
        lines.append(f"{name:<34}skipped: {reason}")
    peer = result.get("peer", {})
    if "datatrove" in peer:
        docs = peer["corpus"]["docs"]
        lines += ["", f"same {docs} documents ({peer['corpus']['mb']} MB), evenly spaced:"]
        lines.append(row("DataTrove FineWeb chain", peer["datatrove"]))
        if "heuristics_same_docs" in peer:
            lines.append(row("heuristics", peer["heuristics_same_docs"]))
            lines.append(f"heuristics vs DataTrove: {peer['heuristics_vs_datatrove']}x")
        lines.append(row("annotate chain", peer["annotate_same_docs"]))
        lines.append(f"annotate chain vs DataTrove: {peer['annotate_vs_datatrove']}x")
    elif "skipped" in peer:
        lines += ["", f"DataTrove: {peer['skipped']}"]
    if not result.get("annotate_complete", False):
        lines += ["", "note: the annotate chain is incomplete (see skipped): not the full chain's figure"]
    return "\n".join(lines)

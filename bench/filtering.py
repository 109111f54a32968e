"""``curate bench filtering``: does a quality-filtered mixture train a better proxy than an unfiltered one
at the same token budget? (The DCLM / FineWeb-Edu seed finding, at small scale, on this project's own
pipeline, mixer and trainer.)

What it does, and why each step is shaped so:

1. **Pool.** Real web documents: the general Common Crawl shards of ``../shared/data/web`` (C4, RedPajama
   CC/C4, Dolma CC, WARC/WET; the curated NIH/USPTO/StackExchange samples are not random web text and are
   left out, as :func:`filters.quality_recipe.crawl_documents` decides; so is the C4 Guardian shard, a
   positive class of the quality model) plus the 499 web documents of
   ``quality/dclm_majority_data.jsonl`` (their human labels are never used for selection, only reported).
   A fixed 10% of documents (by md5 of the id) is held out *before* anything is selected, so the web
   evaluation slice is in neither mixture.
2. **Annotate, never drop.** The pool goes through :func:`curate.run.run_pipeline` with normalize, langid,
   heuristics (annotate), KenLM perplexity and the quality ensemble, no threshold anywhere: every document
   keeps a ``quality`` column (tag first, decide later). Exact + near dedup runs across the pool and the
   held-out slice, so a held-out document can not also be a training document.
3. **Two mixtures, one budget.** Both arms are built by :func:`mixers.sampler.build_mixture` with the same
   tokenizer (trained on the whole training pool, so it favours neither arm) and the same token budget:
   *unfiltered* takes random pool documents, *filtered* only those with ``quality`` in the top
   ``keep`` share (DCLM keeps the top ~10%; a pool this small needs a larger share). The budget is
   capped at the distinct tokens the filtered arm holds, so both mixtures are one epoch of distinct
   documents; when ``--tokens`` asks for more, both arms repeat their mixture by the same factor.
4. **Same proxy.** Same preset, precision, steps, batch, learning rate and seed for both arms
   (:func:`trainer.train.train_run`, every mixture document used for training).
5. **Held-out, high-quality evaluation** in bits per byte (:func:`trainer.proxy.eval_proxy`):
   ``wiki_html``, the prose of 5 Wikipedia pages the filter models never saw (raw HTML, resiliparse
   main content), and ``wiki_html_refs``, the reference lists and link sections of those pages;
   ``enwiki`` (the 206-page XML sample, markup stripped) and ``wikitext2`` (test articles), both in the
   filter models' *training* data, never in the proxy's; ``books``, Gutenberg passages of books past
   the filter models' book sample; and ``web_heldout``, the held-out web slice. Lower is better;
   ``delta`` is filtered minus unfiltered (negative: filtering helped).
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.filtering_eval_sets import eval_sets
from bench.filtering_pool import (
    DCLM_FILE,
    HELD_OUT_PERCENT,
    POOL_DOMAIN,
    FilterModels,
    corpus_rows,
    curate_pool,
    ensure_filter_models,
    model_cards,
    pool_documents,
    write_pool_shards,
)
from bench.machine import machine
from curate.errors import ConfigError
from mixers.significance import paired_comparison

BENCH_DIR = Path(".cache/bench/filtering")
EVAL_CHARS = 300_000
ARMS = ("unfiltered", "filtered")


# ------------------------------------------------------------------------------------ mixtures + runs


def pool_tokenizer(texts: list[str], vocab_size: int, cache_dir: Path) -> Path:
    """One BPE for both arms, trained on the whole training pool: it favours neither arm, so their bits
    per byte are comparable (and it never saw an evaluation set)."""
    from trainer.tokenizer import train_tokenizer

    return train_tokenizer(texts, vocab_size=vocab_size, cache_dir=cache_dir)


def token_counts(tokenizer_path: Path, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Tokens per document as the mixer counts them (`text_counter`, end-of-text included): the budget."""
    from mixers.tokens import text_counter
    from trainer.tokenizer import load_tokenizer

    return text_counter(load_tokenizer(tokenizer_path))(texts)


def quality_threshold(quality: np.ndarray, keep: float) -> float:
    """The score above which the top ``keep`` share of pool documents lies."""
    return float(np.quantile(quality.astype(np.float64), 1.0 - keep))


def build_arm(
    corpus: Path, tokenizer: Path, budget: int, where: str | None, seed: int, out: Path
) -> dict[str, Any]:
    """One arm's mixture (Parquet + token shards) by the mixer itself; rebuilt each time (a second)."""
    from mixers.sampler import build_mixture
    from mixers.spec import parse_spec

    domain: dict[str, Any] = {"weight": 1.0} | ({"where": where} if where else {})
    spec = {
        "corpora": [str(corpus.resolve())],
        "budget": budget,
        "seed": seed,
        "tokenizer": {"path": str(tokenizer.resolve())},
        "max_epochs": 1,
        "domains": {POOL_DOMAIN: domain},
        "eval": {"tokens": 0},  # scored on the bench's own evaluation sets; the budget may be the whole pool
    }
    shutil.rmtree(out, ignore_errors=True)
    return build_mixture(parse_spec(spec, where=f"bench filtering {out.name}"), out, tokens=True)


def mixture_summary(mix: Path, manifest: dict[str, Any], labels: dict[str, int | None]) -> dict[str, Any]:
    """Documents, tokens, mean quality and what the DCLM human labels say of the chosen documents."""
    table = pa.concat_tables(
        pq.read_table(mix / f["path"], columns=["id", "quality"]) for f in manifest["files"]
    )
    ids = table.column("id").to_pylist()
    dclm = [labels[i] for i in ids if labels.get(i) is not None]
    domain = manifest["domains"][POOL_DOMAIN]
    return {
        "documents": manifest["totals"]["documents"],
        "unique_documents": domain["unique_documents"],
        "tokens": manifest["totals"]["achieved_tokens"],
        "available_documents": domain["available_documents"],
        "mean_quality": float(np.mean(table.column("quality").to_numpy(zero_copy_only=False))),
        "dclm_documents": len(dclm),
        "dclm_human_positive_share": (sum(dclm) / len(dclm)) if dclm else None,
    }


def train_and_eval(
    mix: Path,
    run_dir: Path,
    sets: dict[str, Path],
    seed: int,
    train: dict[str, Any],
) -> dict[str, Any]:
    """Train the proxy on one arm (every mixture document is training data: eval_fraction 0) and score
    it on the target sets, each evaluated whole."""
    from trainer.proxy import eval_proxy, resolve_source
    from trainer.train import parse_train_config, train_run

    token_dir = resolve_source(mix).token_dir
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, never a resumed tail of another budget
    cfg = parse_train_config(
        token_dir=token_dir,
        out_dir=run_dir,
        seed=seed,
        eval_fraction=0.0,
        checkpoint_every=train["steps"],
        progress=False,
        **{k: v for k, v in train.items() if k != "precision"},
        precision={"name": train["precision"]},
    )
    started = time.perf_counter()
    _, summary = train_run(cfg)
    train_seconds = time.perf_counter() - started
    record = eval_proxy(run_dir, target_sets=sets, max_eval_tokens_per_domain=None, device="cpu")
    return {
        "bpb": {name: figures["bpb"] for name, figures in record["targets"].items()},
        "final_train_loss": summary["final_loss"],
        "tokens_trained": record["tokens_trained"],
        "train_seconds": round(train_seconds, 1),
        "tokenizer_sha256": _sha256(run_dir / "tokenizer.json"),
    }


def check_train_settings(out: Path, train: dict[str, Any]) -> None:
    """A bad preset or precision is a one-line error before the pipeline runs, not after it."""
    from trainer.train import parse_train_config

    settings = {k: v for k, v in train.items() if k != "precision"}
    parse_train_config(token_dir=out, out_dir=out, precision={"name": train["precision"]}, **settings)


def _sha256(path: Path) -> str:
    from curate.checksums import file_sha256

    return file_sha256(path)


# ------------------------------------------------------------------------------------------ the bench


def bench_filtering(
    out: Path = BENCH_DIR,
    tokens: int = 1_000_000,
    seeds: tuple[int, ...] = (0, 1, 2),
    keep: float = 0.4,
    preset: str = "tiny",
    precision: str = "fp32",
    vocab_size: int = 4096,
    batch_size: int = 16,
    seq_len: int = 128,
    threads: int | None = 1,
    workers: int = 1,
    max_docs: int | None = None,
    eval_chars: int = EVAL_CHARS,
    models: FilterModels | None = None,
) -> dict[str, Any]:
    """Both arms per seed at the same training tokens; returns the JSON figures (see the module doc)."""
    from curate.textsources import shared_data_dir

    if not 0.0 < keep < 1.0:
        raise ConfigError(f"--keep {keep}: the kept share of the pool must be between 0 and 1")
    if not seeds:
        raise ConfigError("--seeds: give at least one seed")
    steps = -(-tokens // (batch_size * seq_len))
    train = {"preset": preset, "precision": precision, "steps": steps, "batch_size": batch_size,
             "seq_len": seq_len, "threads": threads}  # fmt: skip
    check_train_settings(out, train)
    shared = shared_data_dir()
    if shared is None or not (shared / DCLM_FILE).is_file():
        raise ConfigError("bench filtering needs ../shared/data (or CURATE_SHARED_DATA pointing at it)")
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    models = models or FilterModels()
    ensure_filter_models(models)
    docs = pool_documents(shared, max_docs)
    labels = {d["id"]: d["label"] for d in docs}
    manifest = curate_pool(write_pool_shards(docs, out / "shards"), out, workers, models)
    corpus = out / "corpus"
    sets = eval_sets(shared, out / "eval", corpus, eval_chars, models)
    pool = corpus_rows(corpus, POOL_DOMAIN)
    texts = pool.column("text").to_pylist()
    tokenizer = pool_tokenizer(texts, vocab_size, out / "tokenizers")
    counts = token_counts(tokenizer, pool.column("text"))
    quality = pool.column("quality").to_numpy(zero_copy_only=False)
    threshold = quality_threshold(quality, keep)
    filtered_tokens = int(counts[quality >= threshold].sum())
    budget = min(tokens, filtered_tokens)
    where = {"unfiltered": None, "filtered": f"quality >= {threshold!r}"}
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    mixtures: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    for seed in seeds:
        for arm in ARMS:
            mix = out / "mixes" / f"{arm}-s{seed}"
            mixture = build_arm(corpus, tokenizer, budget, where[arm], seed, mix)
            mixtures[arm].append(mixture_summary(mix, mixture, labels))
            runs[arm].append(train_and_eval(mix, out / "runs" / f"{arm}-s{seed}", sets, seed, train))
    return {
        "pool": pool_figures(manifest, counts, quality, threshold, docs),
        "filter_models": model_cards(models),
        "keep": keep,
        "quality_threshold": threshold,
        "where": where,
        "tokenizer": {"path": str(tokenizer), "sha256": _sha256(tokenizer), "vocab_size": vocab_size},
        "mixture_tokens": budget,
        "train_tokens": steps * batch_size * seq_len,
        "epochs": {arm: [steps * batch_size * seq_len / m["tokens"] for m in mixtures[arm]] for arm in ARMS},
        "train": train,
        "seeds": list(seeds),
        "eval_sets": eval_set_figures(sets),
        "bpb": bpb_table(runs, seeds),
        "mixtures": mixtures,
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }


def pool_figures(
    manifest: dict[str, Any],
    counts: np.ndarray,
    quality: np.ndarray,
    threshold: float,
    docs: list[dict[str, Any]],
) -> dict[str, Any]:
    """What the pipeline kept, how many tokens the pool and its filtered part hold."""
    kept = quality >= threshold
    return {
        "documents_read": len(docs),
        "pipeline": {
            k: manifest.get("totals", {}).get(k) for k in ("read", "kept", "rejected", "duplicates")
        },
        "documents": len(quality),
        "tokens": int(counts.sum()),
        "filtered_documents": int(kept.sum()),
        "filtered_tokens": int(counts[kept].sum()),
        "held_out_percent": HELD_OUT_PERCENT,
    }


def eval_set_figures(sets: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Documents and characters of each evaluation set, so a reader can judge its size."""
    figures = {}
    for name, path in sets.items():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        figures[name] = {"documents": len(rows), "chars": sum(len(r["text"]) for r in rows)}
    return figures


def bpb_table(runs: dict[str, list[dict[str, Any]]], seeds: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """Per evaluation set: each arm's mean and per-seed bpb, and filtered minus unfiltered (paired)."""
    table: dict[str, dict[str, Any]] = {}
    for name in runs[ARMS[0]][0]["bpb"]:
        per_arm = {arm: [r["bpb"][name] for r in runs[arm]] for arm in ARMS}
        deltas = [f - u for f, u in zip(per_arm["filtered"], per_arm["unfiltered"], strict=True)]
        table[name] = {
            **{arm: {"mean": statistics.fmean(v), "per_seed": v} for arm, v in per_arm.items()},
            "delta": statistics.fmean(deltas),
            "delta_per_seed": deltas,
            "relative_delta": statistics.fmean(deltas) / statistics.fmean(per_arm["unfiltered"]),
            "filtered_better_in": sum(d < 0 for d in deltas),
            "seeds": len(seeds),
            "test": paired_comparison(per_arm["filtered"], per_arm["unfiltered"], ("filtered", "unfiltered")),
        }
    return table


def format_table(figures: dict[str, Any]) -> str:
    """The figures a reader wants first, one line per evaluation set (``--json`` prints everything)."""
    mixtures = figures["mixtures"]
    lines = [
        f"pool: {figures['pool']['documents']} documents, {figures['pool']['tokens']:,} tokens; filtered "
        f"(quality >= {figures['quality_threshold']:.3f}, top {figures['keep']:.0%} of documents): "
        f"{figures['pool']['filtered_documents']} documents, {figures['pool']['filtered_tokens']:,} tokens",
        f"each arm: {figures['mixture_tokens']:,}-token mixture, {figures['train_tokens']:,} tokens trained "
        f"(~{statistics.fmean(figures['epochs']['filtered']):.2f} epochs), seeds {figures['seeds']}",
        f"documents per mixture: unfiltered {[m['documents'] for m in mixtures['unfiltered']]}, "
        f"filtered {[m['documents'] for m in mixtures['filtered']]}",
        f"{'eval set (bpb)':<16}{'unfiltered':>12}{'filtered':>12}{'delta':>10}{'filtered better':>17}",
    ]
    for name, row in figures["bpb"].items():
        lines.append(
            f"{name:<16}{row['unfiltered']['mean']:>12.4f}{row['filtered']['mean']:>12.4f}"
            f"{row['delta']:>+10.4f}{row['filtered_better_in']:>11}/{row['seeds']} seeds  "
            f"{row['test']['verdict']}"
        )
    lines.append(f"{figures['seconds']:.0f} s on {figures['machine']['cores']} cores")
    return "\n".join(lines)

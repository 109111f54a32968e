"""``curate bench meco``: metadata conditioning then cooldown (MeCo) against plain training, on real text.

The paper ("Metadata Conditioning Accelerates Language Model Pre-training", Gao et al. 2025) claims a
model trained with each document's URL prepended for 90% of its tokens, then 10% plain, matches the plain
model's quality with about a third less data, and can be steered by the metadata at inference. Here, per
seed (paired: same initialisation and split):

* ``plain``: the tiny proxy on N tokens, no metadata;
* ``meco``: the same N tokens, metadata prefixes (loss-free) for the first 90%, plain for the last 10%;
* ``meco_two_thirds``: MeCo on 2/3 of N tokens (the "third less data" claim).

Each is scored as every run is, in bits per byte of held-out documents WITHOUT metadata (lower is
better), and compared paired with ``plain`` (mean +- SE, paired t-test). Conditional scoring: held-out
documents of each site scored with their own site as prefix, with another site's, and without one (the
prefix heads every window of a document, so the whole document is conditioned); and
conditional generation: continuations sampled after each site's prefix, each matched to the site whose
held-out documents its words resemble most (the share that land on their own site; 1/3 is chance).

The corpus is real text with real identities: Wikipedia pages (gensim's sample) at their
``en.wikipedia.org/wiki/TITLE`` URLs, Gutenberg books (``../shared/data``) at ``gutenberg.org/ebooks/ID``,
standard-library modules at their CPython GitHub URLs, crawled web pages at the URLs their datasets
record (site: the registered domain, as the tag stage computes it), and news texts without any URL
(they train plain in every arm). It is written as Parquet with ``url`` and ``site`` columns and tokenised
by the trainer's own Parquet path, so the metadata travels the way a tagged corpus's does.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
import resource
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.machine import machine
from curate.errors import ConfigError
from curate.textsources import news_texts, shared_data_dir, stdlib_sources, wikipedia_pages
from mixers.significance import mean_and_se, paired_comparison
from trainer.choices import MetadataField
from trainer.evaluate import bits_per_byte, documents_nats
from trainer.generate import sample_continuation
from trainer.metadata import MAX_PREFIX_TOKENS, encode_prefixes
from trainer.token_shards import TokenShards, is_token_dir, write_parquet_token_shards
from trainer.tokenizer import load_tokenizer, train_tokenizer
from trainer.train import Run, TrainConfig, evaluate_held_out, parse_train_config, train_run

BENCH_DIR = Path(".cache/bench/meco")
CHUNK_CHARS = 3000
EVAL_FRACTION = 0.1
MAX_EVAL_TOKENS = 16_384  # per domain, whole documents
GENERATIONS, GENERATED_TOKENS = 4, 48  # continuations sampled per site prefix, their length
SITE_DOCS = 8  # held-out documents per site in the conditional scoring (3 passes each)
NO_PREFIX = np.zeros(0, dtype=np.int64)


def _chunks(text: str, size: int = CHUNK_CHARS) -> Iterator[str]:
    """Paragraph-aligned pieces of about ``size`` characters (a long page becomes several documents)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end
        piece = text[start:end].strip()
        if piece:
            yield piece
        start = end + 1


@functools.cache
def _suffix_extractor() -> Any:
    """One extractor for every URL: building one parses the whole bundled suffix list (~0.3 s)."""
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def _site(url: str) -> str | None:
    """The registered domain, as the tag stage computes it (tldextract's bundled suffix list)."""
    host = url.split("/", 3)[2] if "//" in url else url
    site = _suffix_extractor()(host).top_domain_under_public_suffix
    return site.lower() if site else None


def url_corpus_rows(max_docs_per_domain: int = 160, chars: int = CHUNK_CHARS) -> list[dict[str, Any]]:
    """Rows (text, domain, url, site) of real text, pages and books cut into pieces of about ``chars``
    characters; news (whole texts, under 4,000 characters) has no URL (plain in every arm)."""
    root = shared_data_dir()
    if root is None:
        raise ConfigError("curate bench meco needs ../shared/data (or CURATE_SHARED_DATA) for books and web")
    rows: list[dict[str, Any]] = []
    wiki = (
        (f"https://en.wikipedia.org/wiki/{title.replace(' ', '_')}", piece)
        for title, text in wikipedia_pages()
        for piece in itertools.islice(_chunks(text, chars), 3)
    )
    rows += [_row(text, "wiki", url) for url, text in itertools.islice(wiki, max_docs_per_domain)]
    books = sorted((root / "domains" / "books").glob("*.txt"))
    per_book = max(1, max_docs_per_domain // max(len(books), 1) + 1)
    book_rows = []
    for path in books:
        book_id = path.stem.split("-")[0]
        url = f"https://www.gutenberg.org/ebooks/{book_id}"
        passages = _one_book_passages(path, per_book, chars)
        book_rows += [_row(text, "books", url) for text in passages]
    rows += book_rows[:max_docs_per_domain]
    code = stdlib_sources(max_docs_per_domain)
    rows += [
        _row(source[:chars], "code", f"https://github.com/python/cpython/blob/main/Lib/{name}")
        for name, source in code
    ]
    rows += [_row(text[:chars], "web", url) for url, text in _web_pages(root)][:max_docs_per_domain]
    rows += [_row(text, "news", None) for text in itertools.islice(news_texts(), max_docs_per_domain)]
    return rows


def _one_book_passages(path: Path, count: int, chars: int) -> list[str]:
    """The first ``count`` passages of one book, skipping the first (the Gutenberg header)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return list(itertools.islice(_chunks(text, chars), 1, count + 1))


def _web_pages(root: Path) -> Iterator[tuple[str, str]]:
    """(url, text) of the crawled pages in ../shared/data/web whose records carry a URL."""
    import gzip

    for path in sorted((root / "web").glob("*.json*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                row = json.loads(line) if line.strip() else {}
                url = row.get("url") or (row.get("id") if str(row.get("id", "")).startswith("http") else None)
                if url and row.get("text"):
                    yield url, row["text"]


def _row(text: str, domain: str, url: str | None) -> dict[str, Any]:
    return {"text": text, "domain": domain, "url": url, "site": _site(url) if url else None}


def url_corpus_token_shards(
    folder: Path, vocab_size: int = 4096, docs_per_domain: int = 160, chars: int = CHUNK_CHARS
) -> Path:
    """The corpus as Parquet (url, site columns) and its token shards, built once into ``folder``."""
    shards = folder / "tokens"
    if is_token_dir(shards):
        return shards
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(url_corpus_rows(docs_per_domain, chars))
    parquet = folder / "corpus.parquet"
    pq.write_table(table, parquet)
    tokenizer_path = train_tokenizer(table.column("text").to_pylist(), vocab_size, folder / "tokenizers")
    write_parquet_token_shards(shards, [parquet], load_tokenizer(tokenizer_path), tokenizer_path)
    return shards


def pooled_bpb(per_domain: dict[str, dict[str, float]]) -> float:
    """Bits per byte over every held-out document of every domain together."""
    nats = sum(d["loss"] * d["tokens"] for d in per_domain.values())
    return nats / math.log(2) / sum(d["bytes"] for d in per_domain.values())


def site_prefixes(shards: TokenShards, sites: list[str], seq_len: int) -> dict[str, np.ndarray]:
    """Each site's ``URL: SITE`` prefix tokens, cut as training cuts them."""
    limit = min(MAX_PREFIX_TOKENS, seq_len // 4)
    return dict(zip(sites, encode_prefixes(shards.tokenizer_path, list(sites), limit), strict=True))


def site_scores(run: Run, cfg: TrainConfig, sites: list[str]) -> dict[str, dict[str, Any]]:
    """Bits per byte of each site's held-out documents with their own site's prefix, with the next site's
    (in ``sites`` order, cyclically) and with none: does the model use the metadata it was given?

    The prefix heads every window of a document (the whole document is conditioned, as in the paper), so
    windows restart at a document boundary; the ``plain`` score uses the same windows with an empty
    prefix, so the three differ only in the metadata."""
    shards, docs = run.shards, run.split.eval
    doc_sites = shards.metadata("site")
    prefix = site_prefixes(shards, sites, cfg.seq_len)
    scores: dict[str, dict[str, Any]] = {}
    for index, site in enumerate(sites):
        chosen = np.array([d for d in docs if doc_sites[int(d)] == site][:SITE_DOCS], dtype=np.int64)
        if not len(chosen):
            continue
        wrong = sites[(index + 1) % len(sites)]
        n_bytes = int(shards.n_bytes[chosen].sum())
        figures: dict[str, Any] = {"documents": len(chosen), "wrong_site_used": wrong}
        for name, tokens in (
            ("plain", NO_PREFIX),
            ("right_site", prefix[site]),
            ("wrong_site", prefix[wrong]),
        ):
            nats, _ = documents_nats(
                run.model, run.recipe, shards, chosen, cfg.seq_len, cfg.batch_size, run.device,
                lambda _doc, t=tokens: t,
            )  # fmt: skip
            figures[name] = bits_per_byte(nats, n_bytes)
        scores[site] = figures
    return scores


def site_generations(
    run: Run,
    cfg: TrainConfig,
    sites: list[str],
    seed: int,
    samples_per_site: int = GENERATIONS,
    sample_tokens: int = GENERATED_TOKENS,
) -> dict[str, Any]:
    """Continuations sampled after each site's prefix, and which site's held-out documents each is
    closest to by word frequencies (cosine): a model steered by the prefix writes like that site."""
    shards, docs = run.shards, run.split.eval
    tokenizer = load_tokenizer(shards.tokenizer_path)
    doc_sites = shards.metadata("site")
    profiles = {
        site: _word_profile(
            tokenizer.decode(shards.document(int(d)).tolist()) for d in docs if doc_sites[int(d)] == site
        )
        for site in sites
    }
    prefix = site_prefixes(shards, sites, cfg.seq_len)
    samples: dict[str, list[dict[str, str]]] = {}
    for index, site in enumerate(sites):
        samples[site] = []
        for sample in range(samples_per_site):
            ids = sample_continuation(
                run.model, run.recipe, prefix[site], sample_tokens, cfg.seq_len,
                seed * 1000 + index * samples_per_site + sample, shards.vocab_size,
            )  # fmt: skip
            text = tokenizer.decode(ids.tolist())
            samples[site].append({"text": text, "closest_site": _closest(_word_profile([text]), profiles)})
    matched = [s["closest_site"] == site for site, drawn in samples.items() for s in drawn]
    return {"samples": samples, "own_site_share": sum(matched) / len(matched) if matched else None}


def _word_profile(texts: Any) -> Counter[str]:
    return Counter(word for text in texts for word in re.findall(r"[a-z]{2,}", text.lower()))


def _closest(profile: Counter[str], profiles: dict[str, Counter[str]]) -> str:
    def cosine(a: Counter[str], b: Counter[str]) -> float:
        dot = sum(count * b[word] for word, count in a.items())
        norm = math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values()))
        return dot / norm if norm else 0.0

    return max(profiles, key=lambda site: cosine(profile, profiles[site]))


ARMS = {"plain": (1.0, False), "meco": (1.0, True), "meco_two_thirds": (2 / 3, True)}


def bench_meco(
    out_dir: Path = BENCH_DIR,
    tokens: int = 300_000,
    seeds: tuple[int, ...] = (0, 1, 2),
    field: MetadataField = "site",
    cooldown: float = 0.1,
    preset: str = "tiny",
    threads: int | None = 1,
    batch_size: int = 16,
    seq_len: int = 128,
    sites: tuple[str, ...] = ("wikipedia.org", "gutenberg.org", "github.com"),
    resume: bool = False,
    samples_per_site: int = GENERATIONS,
    sample_tokens: int = GENERATED_TOKENS,
) -> dict[str, Any]:
    """Train the three arms per seed and return the JSON figures (see the module doc). ``resume`` keeps
    the run folders of an earlier invocation (finished runs are only evaluated again; ``cpu_s`` then
    counts this invocation's work only)."""
    token_dir = url_corpus_token_shards(out_dir / "corpus")
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    results: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    for seed in seeds:
        for arm, (share, conditioned) in ARMS.items():
            run_dir = out_dir / "runs" / f"{arm}-s{seed}"
            if not resume:
                shutil.rmtree(run_dir, ignore_errors=True)
            steps = math.ceil(share * tokens / (batch_size * seq_len))
            cfg = parse_train_config(
                token_dir=token_dir, out_dir=run_dir, preset=preset, precision={"name": "fp32"}, steps=steps,
                batch_size=batch_size, seq_len=seq_len, seed=seed, threads=threads, checkpoint_every=steps,
                eval_fraction=EVAL_FRACTION, progress=False,
                metadata_conditioning=field if conditioned else None, cooldown=cooldown,
            )  # fmt: skip
            cpu = time.process_time()
            run, summary = train_run(cfg)
            per_domain = evaluate_held_out(run, cfg, MAX_EVAL_TOKENS)
            full_tokens = arm != "meco_two_thirds"  # the site figures compare plain and MeCo at equal tokens
            results[arm].append({
                "seed": seed, "steps": steps, "tokens": steps * batch_size * seq_len,
                "eval_bpb": pooled_bpb(per_domain), "domains": {d: v["bpb"] for d, v in per_domain.items()},
                "sites": site_scores(run, cfg, list(sites)) if full_tokens else None,
                "generations": site_generations(run, cfg, list(sites), seed, samples_per_site, sample_tokens)
                if full_tokens else None,
                "metadata_conditioning": summary.get("metadata_conditioning"),
                "cpu_s": time.process_time() - cpu,
            })  # fmt: skip
    return _figures(results, token_dir, field, cooldown, preset, started_cpu, started_wall)


def _figures(
    results: dict[str, list[dict[str, Any]]],
    token_dir: Path,
    field: str,
    cooldown: float,
    preset: str,
    started_cpu: float,
    started_wall: float,
) -> dict[str, Any]:
    bpb = {arm: [r["eval_bpb"] for r in runs] for arm, runs in results.items()}
    shards = TokenShards(token_dir)
    summary = {
        arm: dict(zip(("mean", "se"), mean_and_se(values), strict=True)) for arm, values in bpb.items()
    }
    return {
        "preset": preset,
        "field": field,
        "cooldown": cooldown,
        "corpus": {"token_dir": str(token_dir), "documents": len(shards),
                   "tokens": int(shards.meta["n_tokens"]), "domains": shards.meta["domains"]},
        "eval": "bits per byte of held-out documents, no metadata, all domains pooled (lower is better)",
        "bpb": summary,
        "meco_vs_plain": paired_comparison(bpb["meco"], bpb["plain"], ("meco", "plain")),
        "meco_two_thirds_vs_plain": paired_comparison(
            bpb["meco_two_thirds"], bpb["plain"], ("meco_two_thirds", "plain")
        ),
        "site_conditioning": _site_summary(results),
        "generation_own_site_share": {
            arm: mean_and_se([r["generations"]["own_site_share"] for r in runs])
            for arm, runs in results.items()
            if runs and runs[0]["generations"]
        },
        "runs": results,
        "cpu_s": time.process_time() - started_cpu,
        "children_cpu_s": resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime,
        "wall_s": time.perf_counter() - started_wall,
        "machine": machine(),
    }  # fmt: skip


def _site_summary(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per arm and site: right-site minus wrong-site and right-site minus plain bpb, paired over seeds."""
    summary: dict[str, Any] = {}
    for arm in ("plain", "meco"):
        runs = results[arm]
        for site in runs[0]["sites"] or {}:
            figures = [r["sites"][site] for r in runs]
            right, wrong, plain = ([f[k] for f in figures] for k in ("right_site", "wrong_site", "plain"))
            summary[f"{arm}:{site}"] = {
                "right_vs_wrong": paired_comparison(right, wrong, ("right", "wrong")),
                "right_vs_plain": paired_comparison(right, plain, ("right", "plain")),
            }
    return summary

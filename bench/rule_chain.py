"""Benchmark of the heuristic rules against DataTrove's FineWeb filter chain, on the same real documents.

Why: the rules exist to be fast (DataTrove runs ~0.17 MB/s per core because of spaCy tokenization and
per-n-gram strings), so the figure that matters is the ratio to the peer measured in the same run, on the
same machine and documents. `bench_rules()` returns JSON-able figures for `curate bench rules`; the corpus
comes from ../shared/data at run time (never copied into the repository).

Timing uses the process CPU clock (`time.process_time`): both sides run on one core (Arrow is limited to
one thread here), and CPU time is not inflated by other processes sharing the machine. Wall time is
reported too.
"""

from __future__ import annotations

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
from curate.errors import ConfigError
from filters.rules import RuleEngine, RuleSet

GUTENBERG_START = re.compile(r"^\*\*\* ?START OF.*$", re.MULTILINE)
GUTENBERG_END = re.compile(r"^\*\*\* ?END OF.*$", re.MULTILINE)
WIKITEXT_TITLE = re.compile(r"^ = [^=].* = $", re.MULTILINE)

FINEWEB_LIKE_RULES = {"c4": {"require_terminal_punct": False, "reject_bad_words": False}}
"""Our rules configured as DataTrove's FineWeb chain (C4 keeps unpunctuated lines, no bad words)."""


# ---------------------------------------------------------------------------------------------- corpus


def default_data_dir() -> Path:
    """$CURATE_SHARED_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("CURATE_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def read_jsonl_texts(path: Path) -> Iterator[str]:
    """The 'text' field of every record of a .jsonl / .json.gz / .jsonl.gz shard."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                text = json.loads(line).get("text")
                if text:
                    yield text


def web_documents(data_dir: Path) -> list[str]:
    """Web-crawl documents of web/ shards and the DCLM human-labelled sample (C4, Dolma, RedPajama...)."""
    shards = sorted(
        p for p in (data_dir / "web").glob("*") if p.name.endswith((".jsonl", ".json.gz", ".jsonl.gz"))
    )
    shards += [data_dir / "quality" / "dclm_majority_data.jsonl"]
    return [text for shard in shards if shard.exists() for text in read_jsonl_texts(shard)]


def gutenberg_body(text: str) -> str:
    """A Project Gutenberg book without its licence header and footer."""
    start, end = GUTENBERG_START.search(text), GUTENBERG_END.search(text)
    return text[start.end() if start else 0 : end.start() if end else len(text)].strip()


def passages(text: str, size: int) -> list[str]:
    """Consecutive paragraphs packed into passages of about `size` characters."""
    out, current, length = [], [], 0
    for paragraph in re.split(r"\n\s*\n", text):
        if paragraph.strip():
            current.append(paragraph.strip())
            length += len(paragraph)
        if length >= size:
            out.append("\n\n".join(current))
            current, length = [], 0
    return out


def book_passages(
    data_dir: Path, size: int = 5000, per_book: int = 4, max_books: int | None = None
) -> list[str]:
    """`per_book` passages of ~size chars spread evenly through each Gutenberg book (or the first few)."""
    out = []
    for path in sorted((data_dir / "domains" / "books").glob("*.txt"))[:max_books]:
        cut = passages(gutenberg_body(path.read_text("utf-8", errors="replace")), size)
        if cut:
            out += [cut[int(i)] for i in np.unique(np.linspace(0, len(cut) - 1, per_book).astype(int))]
    return out


def wikipedia_articles(data_dir: Path) -> list[str]:
    """WikiText-2 test articles (real Wikipedia, tokenised with spaces around punctuation)."""
    path = data_dir / "domains" / "wikitext2_test.txt"
    if not path.exists():
        return []
    text = path.read_text("utf-8")
    starts = [m.start() for m in WIKITEXT_TITLE.finditer(text)] + [len(text)]
    return [text[a:b].strip() for a, b in zip(starts, starts[1:], strict=False) if text[a:b].strip()]


def build_corpus(data_dir: Path | None = None, max_mb: float = 4.0, passage_chars: int = 5000) -> list[str]:
    """Real documents for the benchmark: web shards, then Wikipedia and book passages, up to max_mb.

    Raises ConfigError naming the folder when the shared data is absent.
    """
    data_dir = data_dir or default_data_dir()
    if not data_dir.is_dir():
        raise ConfigError(f"shared data folder {data_dir} not found; set CURATE_SHARED_DATA")
    sources = [web_documents(data_dir), wikipedia_articles(data_dir), book_passages(data_dir, passage_chars)]
    budget, corpus = max_mb * 1e6, []
    for index in range(max(map(len, sources), default=0)):  # interleave so a small budget mixes sources
        for source in sources:
            if index < len(source) and budget > 0:
                corpus.append(source[index])
                budget -= len(source[index].encode("utf-8"))
    return corpus


# ------------------------------------------------------------------------------------------- benchmark


def bench_rules(
    corpus_texts: Sequence[str],
    *,
    repeats: int = 3,
    datatrove: bool | None = None,
    datatrove_max_docs: int | None = None,
) -> dict:
    """Docs/s and MB/s of our full rule chain and, if importable, of DataTrove's FineWeb chain.

    Ours evaluates every rule on every document (all flags, bad words included); DataTrove stops at a
    document's first failure, so the comparison is conservative. `datatrove=None` means 'if installed'.
    """
    texts = list(corpus_texts)
    result = {"corpus": _corpus_figures(texts), "machine": machine()}
    with _single_arrow_thread():
        result["ours"] = _best_of(repeats, lambda: RuleEngine(RuleSet()).evaluate(texts), texts)
        fineweb_like = RuleEngine(RuleSet(**FINEWEB_LIKE_RULES)).evaluate(texts).first_failed()
    if datatrove is None:
        datatrove = _datatrove_available()
    if datatrove:
        peer_texts = texts[:datatrove_max_docs] if datatrove_max_docs else texts
        decisions: list[str | None] = []
        result["datatrove"] = _best_of(1, lambda: decisions.extend(datatrove_chain(peer_texts)), peer_texts)
        result["speedup_mb_per_s"] = round(result["ours"]["mb_per_s"] / result["datatrove"]["mb_per_s"], 1)
        agree = [(a is None) == (b is None) for a, b in zip(fineweb_like, decisions, strict=False)]
        result["decision_agreement"] = round(float(np.mean(agree)), 4) if agree else None
    return result


def datatrove_chain(texts: Sequence[str]) -> list[str | None]:
    """DataTrove's FineWeb filters in pipeline order; each document stops at its first failure."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    chain = [
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
    ]
    decisions: list[str | None] = []
    for i, text in enumerate(texts):
        doc, reason = Document(text=text, id=str(i)), None
        for step in chain:
            verdict = step.filter(doc)
            if verdict is not True:
                reason = verdict[1] if isinstance(verdict, tuple) else step.name
                break
        decisions.append(reason)
    return decisions


def _best_of(repeats: int, run: Callable[[], object], texts: Sequence[str]) -> dict:
    """Best CPU time of `repeats` runs, as seconds, docs/s and MB/s (plus the wall time of that run)."""
    best_cpu, best_wall = float("inf"), float("inf")
    for _ in range(max(repeats, 1)):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if cpu < best_cpu:
            best_cpu, best_wall = cpu, wall
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    return {
        "docs": len(texts),
        "cpu_seconds": round(best_cpu, 3),
        "wall_seconds": round(best_wall, 3),
        "docs_per_s": round(len(texts) / best_cpu, 1),
        "mb_per_s": round(megabytes / best_cpu, 3),
    }


def _corpus_figures(texts: Sequence[str]) -> dict:
    sizes = [len(t.encode("utf-8")) for t in texts]
    return {
        "docs": len(texts),
        "mb": round(sum(sizes) / 1e6, 3),
        "mean_doc_kb": round(np.mean(sizes) / 1e3, 2),
    }


def _datatrove_available() -> bool:
    try:
        import datatrove.pipeline.filters  # noqa: F401
        import spacy  # noqa: F401  (DataTrove's English word tokenizer)
    except ImportError:
        return False
    return True


class _single_arrow_thread:
    """Limit Arrow's thread pool to one thread while timing, restoring it afterwards."""

    def __enter__(self) -> None:
        self.previous = pa.cpu_count()
        pa.set_cpu_count(1)

    def __exit__(self, *exc: object) -> None:
        pa.set_cpu_count(self.previous)


if __name__ == "__main__":
    print(json.dumps(bench_rules(build_corpus()), indent=2))

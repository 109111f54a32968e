"""The demo's last step: a small mixture of the demo corpus, with a tokenizer trained on that corpus.

`curate demo` calls `demo_mixture(corpus_out, mix_out)` after the curation run, so the main job ends
where training starts: shuffled Parquet parts, token shards and a manifest of what went in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mixers.corpus import open_corpora
from mixers.db import connect
from mixers.errors import MixError
from mixers.sampler import build_mixture
from mixers.spec import parse_spec

DEMO_WEIGHTS = {"web": 0.35, "wiki": 0.25, "books": 0.2, "code": 0.1, "news": 0.1}
# CCNet's head and middle perplexity buckets (the tail, least like Wikipedia, left out), as RedPajama
# kept them: the mixture selects web pages by score; the other domains are taken as curated.
DEMO_WHERE = {"web": "ppl_bucket in [head, middle]"}
DEMO_BUDGET = 1_000_000
DEMO_VOCAB = 4096
TOKENIZER_SAMPLE_CHARS = 4_000_000


def corpus_texts(corpus_out: Path, max_chars: int) -> Iterator[str]:
    """An even, seeded sample of each domain's texts (md5 of the id), at most max_chars in all.

    Each domain gets an equal share so a large domain (books) cannot crowd a small one (news) out of the
    tokenizer's training sample. Texts stream from DuckDB; the corpus is never loaded whole.
    """
    corpora = open_corpora([str(corpus_out)])
    domains = corpora.domains()
    quota = max_chars // max(1, len(domains))
    for domain in domains:
        files = [str(p.path) for p in corpora.parts_for([domain])]
        yield from _domain_sample(files, quota)


def _domain_sample(files: list[str], quota: int) -> Iterator[str]:
    """Documents in md5(id) order until `quota` characters; only the chosen few texts are ever sorted."""
    with connect() as con:
        corpus = con.read_parquet(
            files, union_by_name=True, hive_partitioning=False, filename=True, file_row_number=True
        )
        corpus.create_view("corpus")
        chars = "n_chars" if "n_chars" in corpus.columns else "length(text)"
        reader = con.sql(
            f"""
            WITH ranked AS (
                SELECT filename, file_row_number, md5(id) AS k,
                    sum(COALESCE({chars}, 0)) OVER (ORDER BY md5(id), filename, file_row_number
                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - COALESCE({chars}, 0) AS before
                FROM corpus
            )
            SELECT c.text FROM corpus c
            JOIN ranked r ON r.filename = c.filename AND r.file_row_number = c.file_row_number
            WHERE r.before < ?
            ORDER BY r.k, r.filename, r.file_row_number
            """,
            params=[quota],
        ).to_arrow_reader(256)
        taken = 0
        for batch in reader:
            for text in batch.column(0).to_pylist():
                piece = (text or "")[: quota - taken]
                taken += len(piece)
                yield piece
                if taken >= quota:
                    return


def corpus_tokenizer(corpus_out: Path, vocab_size: int = DEMO_VOCAB, cache_dir: Path | None = None) -> Path:
    """A byte-level BPE trained on the corpus (the trainer's recipe), cached by the sample's hash."""
    from trainer.tokenizer import train_tokenizer

    texts = list(corpus_texts(corpus_out, TOKENIZER_SAMPLE_CHARS))
    return train_tokenizer(
        texts, vocab_size=vocab_size, cache_dir=cache_dir, max_chars=TOKENIZER_SAMPLE_CHARS
    )


def demo_spec(corpus_out: Path, tokenizer: Path, domains: list[str]) -> dict[str, Any]:
    """Weights over the demo domains present; small domains may repeat up to 4 epochs."""
    present = {d: w for d, w in DEMO_WEIGHTS.items() if d in domains}
    total = sum(present.values())
    if not present:
        raise MixError(f"the demo mixture needs one of {', '.join(DEMO_WEIGHTS)}; the corpus holds {domains}")
    return {
        "corpora": [str(corpus_out.resolve())],
        "budget": DEMO_BUDGET,
        "seed": 0,
        "tokenizer": {"path": str(tokenizer)},
        "max_epochs": 4,
        "domains": {d: {"weight": w / total, "where": DEMO_WHERE.get(d)} for d, w in present.items()},
    }


def demo_mixture(
    corpus_out: Path,
    mix_out: Path,
    tokens: bool = True,
    tokenizer: Path | None = None,
    budget: int = DEMO_BUDGET,
) -> dict[str, Any]:
    """Build the demo mixture (and its token shards) from the demo corpus; returns its manifest.

    The tokenizer is trained on the corpus (cached by its sample's hash) unless one is given.
    """
    domains = open_corpora([str(corpus_out)]).domains()
    tokenizer = tokenizer or corpus_tokenizer(corpus_out)
    spec = parse_spec({**demo_spec(corpus_out, tokenizer, domains), "budget": budget}, where="demo mixture")
    return build_mixture(spec, mix_out, tokens=tokens)

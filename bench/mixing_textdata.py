"""Per-domain token shards built from real text that installed packages ship (no repository files).

Why here: tests, the demo and the mixing benchmark need a multi-domain corpus on every machine, and the
strategies need it as token shards (the trainer's format). gensim's Wikipedia pages and news articles
and the standard library's source give three domains with very different statistics (prose, reportage,
code), which is what makes a mixing decision matter at all.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import platform
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from curate.textsources import (
    REPO_ROOT,
    book_passages,
    news_texts,
    shared_data_dir,
    stdlib_sources,
    wikipedia_pages,
)

DEFAULT_DOMAINS = ("wiki", "news", "code")
SHARED_DOMAINS = ("web", "books", "math")
CACHE_VERSION = "text-shards-v1"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "strategies" / "text"


def domain_texts(domain: str, max_docs: int, max_chars: int) -> list[str]:
    """Up to ``max_docs`` texts of one package-shipped domain, each cut to ``max_chars`` characters."""
    if domain == "wiki":
        texts: Iterable[str] = (text for _, text in wikipedia_pages())
    elif domain == "news":
        texts = news_texts()
    elif domain == "code":
        texts = (source for _, source in stdlib_sources())
    elif domain in SHARED_DOMAINS:
        texts = shared_texts(domain)
    else:
        known = ", ".join(DEFAULT_DOMAINS + SHARED_DOMAINS)
        raise ValueError(f"unknown text domain {domain!r}; choose from {known}")
    return [text[:max_chars] for text in itertools.islice(texts, max_docs)]


def available_domains() -> tuple[str, ...]:
    """Package-shipped domains always; web, books and maths when ../shared/data is present."""
    return DEFAULT_DOMAINS + (SHARED_DOMAINS if shared_data_dir() is not None else ())


def shared_texts(domain: str) -> Iterator[str]:
    """Texts of a ../shared/data domain: web (C4 and Dolma JSONL), books (Gutenberg passages), maths
    (GSM8K problems with their worked answers)."""
    root = shared_data_dir()
    if root is None:
        raise ValueError(f"domain {domain} needs ../shared/data (or CURATE_SHARED_DATA); it is absent")
    if domain == "books":
        yield from (text for _, text in book_passages(root / "domains" / "books", passage_chars=3000))
    elif domain == "math":
        yield from (
            f"{row['question']}\n{row['answer']}" for row in _jsonl(root / "domains" / "gsm8k_train.jsonl")
        )
    else:
        for path in sorted((root / "web").glob("*.json*")):
            yield from (row["text"] for row in _jsonl(path) if row.get("text"))


def _jsonl(path: Path) -> Iterator[dict]:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def corpus(
    domains: Sequence[str] = DEFAULT_DOMAINS, max_docs: int | dict[str, int] = 60, max_chars: int = 4000
) -> list[tuple[str, str]]:
    """(text, domain) pairs; ``max_docs`` may differ per domain so the natural mix is not uniform."""
    pairs: list[tuple[str, str]] = []
    for domain in domains:
        count = max_docs[domain] if isinstance(max_docs, dict) else max_docs
        pairs += [(text, domain) for text in domain_texts(domain, count, max_chars)]
    return pairs


def write_text_shards(
    folder: Path,
    pairs: list[tuple[str, str]],
    vocab_size: int = 512,
    tokenizer_path: Path | None = None,
    tokenizer_cache: Path | None = None,
) -> Path:
    """Token shards of (text, domain) pairs; trains (or reuses, by hash) a BPE tokenizer unless given one.

    Pass the same ``tokenizer_path`` to several folders when their figures must be comparable (an extra
    evaluation set must share the training shards' vocabulary).
    """
    from trainer.token_shards import is_token_dir, write_token_shards
    from trainer.tokenizer import encode_documents, load_tokenizer, train_tokenizer

    folder = Path(folder)
    if is_token_dir(folder):
        return folder
    if tokenizer_path is None:
        cache = tokenizer_cache or folder.parent / "tokenizers"
        tokenizer_path = train_tokenizer([text for text, _ in pairs], vocab_size, cache)
    tokenizer = load_tokenizer(tokenizer_path)
    encoded = encode_documents(tokenizer, [text for text, _ in pairs])
    docs = ((ids, domain, n_bytes) for (ids, n_bytes), (_, domain) in zip(encoded, pairs, strict=True))
    write_token_shards(folder, docs, tokenizer.get_vocab_size(), tokenizer_path)
    return folder


def cached_text_shards(
    domains: Sequence[str] = DEFAULT_DOMAINS,
    max_docs: int | dict[str, int] = 60,
    max_chars: int = 4000,
    vocab_size: int = 512,
    cache_dir: Path | None = None,
) -> Path:
    """Token shards of :func:`corpus`, built once and kept under ``.cache/strategies/text/<key>``.

    The key covers every argument and the versions of the text's sources (Python's stdlib, gensim), so a
    changed source builds a new folder rather than reusing a stale one. Writes are atomic (the trainer's
    writer renames ``tokens.json`` last), so concurrent builders of one key are harmless.
    """
    import gensim

    key = json.dumps(
        [
            CACHE_VERSION,
            list(domains),
            max_docs,
            max_chars,
            vocab_size,
            platform.python_version(),
            gensim.__version__,
        ],
        sort_keys=True,
    )
    from trainer.token_shards import is_token_dir

    folder = (cache_dir or DEFAULT_CACHE) / hashlib.sha256(key.encode()).hexdigest()[:16]
    if is_token_dir(folder / "tokens"):
        return folder / "tokens"
    pairs = corpus(domains, max_docs, max_chars)
    return write_text_shards(folder / "tokens", pairs, vocab_size, tokenizer_cache=folder)


MIXTURE_VERSION = "text-mixture-v2"


def cached_text_mixture(
    domains: Sequence[str] = DEFAULT_DOMAINS,
    max_docs: int | dict[str, int] = 60,
    max_chars: int = 4000,
    vocab_size: int = 512,
    suite: dict[str, float] | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """A natural mixture with its evaluation suite and token shards (``curate mix --tokens``) over a
    curated corpus of :func:`corpus` texts, built once under ``.cache/strategies/text/<key>/mix``.

    Why a real corpus and mixture rather than shards of the texts: the mixing benchmark must score every
    strategy on the corpus's fixed evaluation suite (``mixers.suite``) exactly as ``curate mixsearch`` does
    on a mixture folder, and only ``curate run`` + ``curate mix`` produce one (dedup sketches included, so
    near-duplicates of suite documents stay out of training). The mixture takes every document the suite
    leaves, so it keeps the corpus's natural proportions: a first, one-token-per-domain build reads what is
    available (the manifest's ``available_tokens``), the second asks for exactly that.
    """
    suite = suite or {"tokens": 4_000, "max_share": 0.15}
    key = json.dumps([MIXTURE_VERSION, _source_key(domains, max_docs, max_chars, vocab_size), suite])
    folder = (cache_dir or DEFAULT_CACHE) / hashlib.sha256(key.encode()).hexdigest()[:16]
    mix = folder / "mix"
    if (mix / "manifest.json").is_file():
        return mix
    pairs = corpus(domains, max_docs, max_chars)
    from mixers.sampler import build_mixture
    from mixers.spec import parse_spec
    from trainer.tokenizer import train_tokenizer

    spec = {
        "corpora": [str(_curated_corpus(folder, pairs))],
        "seed": 0,
        "tokenizer": {"path": str(train_tokenizer([t for t, _ in pairs], vocab_size, folder / "tokenizers"))},
        "domains": {d: {"tokens": 1} for d in sorted(set(domains))},
        "eval": suite,
    }
    with warnings.catch_warnings():  # the probe's one-token shares miss their tolerance: by design
        warnings.simplefilter("ignore")
        probe = build_mixture(parse_spec(spec, where="bench text mixture"), folder / "probe")
    spec["domains"] = {d: {"tokens": entry["available_tokens"]} for d, entry in probe["domains"].items()}
    build_mixture(parse_spec(spec, where="bench text mixture"), mix, tokens=True)
    return mix


def _source_key(domains: Sequence[str], max_docs: int | dict[str, int], max_chars: int, vocab: int) -> list:
    """What the texts depend on: the arguments and the versions of their sources (stdlib, gensim)."""
    import gensim

    return [list(domains), max_docs, max_chars, vocab, platform.python_version(), gensim.__version__]


def _curated_corpus(folder: Path, pairs: list[tuple[str, str]]) -> Path:
    """`curate run` (normalize + exact and near dedup, one local worker) over the texts; returns OUT."""
    from curate.config import parse_config, resolve_paths
    from curate.jsonl_files import write_jsonl
    from curate.run import run_pipeline

    shards = folder / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    names = sorted({domain for _, domain in pairs})
    for name in names:
        rows = ({"id": f"{name}/{i}", "text": t} for i, (t, d) in enumerate(pairs) if d == name)
        write_jsonl(shards / f"{name}.jsonl", rows)
    raw = {
        "inputs": [{"path": str(shards / f"{n}.jsonl"), "name": n, "domain": n} for n in names],
        "stages": [{"normalize": {}}],
        "dedup": {},
    }
    config = resolve_paths(parse_config(raw, where="bench text corpus"), base=folder, out=str(folder / "out"))
    run_pipeline(config, "local", 1, progress=False)
    return folder / "out"

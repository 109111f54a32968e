"""A near-duplicate benchmark corpus: real documents plus edited copies, with the ground truth kept.

Originals are real text from ../shared/data and the packages (Project Gutenberg passages, Wikipedia
pages, news, the web shards' documents). A seeded share of them gets one to three *derived* copies, each
made by one to three realistic edits of its parent (the original, or sometimes another copy):

- ``boilerplate``: a site header and/or footer (navigation, copyright line, share buttons) around it;
- ``truncate``: only a leading (or, less often, trailing) share of its words is kept;
- ``substitute`` / ``delete``: a small share of its words is replaced by other corpus words, or dropped;
- ``reorder``: paragraphs (or sentences, for a one-paragraph text) are moved;
- ``whitespace_case``: line breaks, spacing and letter case change, words do not;
- no edit at all: a verbatim copy.

Every document goes to one of several JSONL.gz shards at random, a copy never to its parent's shard, so
duplicates must be found across shards. The ground truth beside the shards (``truth.jsonl.gz``) has one
line per pair of documents of the same family (an original and everything derived from it) with the
exact Jaccard similarity of their word 5-gram sets, computed with
:func:`curate.dedup.shingles.shingle_hashes`, the shingler the pipeline's MinHash uses. Pairs across
families (real text has its own duplicates, e.g. the Project Gutenberg licence) are found by
:func:`similar_pairs`, which computes exact Jaccard over *all* pairs of a corpus.

Building is deterministic for a spec (same bytes every time) and cached under a folder named by the
spec's hash.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from scipy.sparse import csr_matrix

from curate.dedup.shingles import shingle_hashes
from curate.storage import write_atomic
from curate.textsources import book_passages, news_texts, shared_data_dir, wikipedia_pages

GENERATOR_VERSION = 1
EDITS = ("boilerplate", "truncate", "substitute", "delete", "reorder", "whitespace_case")
_EDIT_WEIGHTS = np.array([0.30, 0.25, 0.25, 0.15, 0.15, 0.20])
_WORD = re.compile(r"\S+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class CorpusSpec:
    """What to build. The defaults give about 9,000 documents (about 25 MB of text) in 8 shards."""

    originals: int = 6000
    dup_share: float = 0.3  # share of originals that get derived copies
    max_copies: int = 3
    chain_share: float = 0.25  # share of copies derived from an earlier copy instead of the original
    verbatim_share: float = 0.08  # share of copies with no edit at all
    shards: int = 8
    passage_chars: int = 3000  # book passages are cut near this length
    min_words: int = 20
    seed: int = 0
    ngram: int = 5
    sources: tuple[str, ...] = ("web", "news", "wiki", "books")  # wiki costs ~7 s (gensim's parser)

    def key(self) -> str:
        payload = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class Corpus:
    folder: Path
    shards: list[Path]
    truth: Path  # truth.jsonl.gz: one line per same-family pair
    documents: int
    derived: int
    spec: CorpusSpec

    def truth_pairs(self) -> list[dict[str, Any]]:
        with gzip.open(self.truth, "rt", encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]

    def documents_by_id(self) -> dict[str, str]:
        texts = {}
        for shard in self.shards:
            with gzip.open(shard, "rb") as handle:
                for line in handle:
                    record = orjson.loads(line)
                    texts[record["id"]] = record["text"]
        return texts


@dataclass
class _Doc:
    id: str
    text: str
    kind: str
    url: str
    crawl_date: str
    origin: str  # id of the family's original
    parent: str | None = None
    edits: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------------
# Originals
# --------------------------------------------------------------------------------------------------


def _web_texts(web_dir: Path) -> Iterator[str]:
    """Texts of the JSONL web shards as found (C4, Dolma, RedPajama, Pile samples)."""
    for path in sorted(web_dir.glob("*.json*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            for line in handle:
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                text = record.get("text") if isinstance(record, dict) else None
                if isinstance(text, str) and text.strip():
                    yield text


def original_texts(spec: CorpusSpec) -> list[tuple[str, str]]:
    """(kind, text) of real documents: every web, news and Wikipedia text, then book passages to fill."""
    shared = shared_data_dir()
    pool: list[tuple[str, str]] = []
    if shared is not None and "web" in spec.sources:
        pool += [("web", t) for t in _web_texts(shared / "web")]
    if "news" in spec.sources:
        pool += [("news", t) for t in news_texts()]
    if "wiki" in spec.sources:
        pool += [("wiki", t) for _, t in wikipedia_pages()]
    seen = set()
    unique = []
    for kind, text in pool:  # the samples overlap (the same C4 page in two files): keep one of each
        if text not in seen and len(text.split()) >= spec.min_words:
            seen.add(text)
            unique.append((kind, text))
    rng = np.random.default_rng(spec.seed)
    if shared is not None and "books" in spec.sources and len(unique) < spec.originals:
        passages = [
            t
            for _, t in book_passages(shared / "domains" / "books", spec.passage_chars)
            if len(t.split()) >= spec.min_words
        ]
        take = min(len(passages), spec.originals - len(unique))
        chosen = np.sort(rng.choice(len(passages), size=take, replace=False))
        unique += [("books", passages[i]) for i in chosen]
    if len(unique) > spec.originals:
        chosen = np.sort(rng.choice(len(unique), size=spec.originals, replace=False))
        unique = [unique[i] for i in chosen]
    return unique


# --------------------------------------------------------------------------------------------------
# Edits
# --------------------------------------------------------------------------------------------------

_HEADERS = (
    "{site} | Home | About | Contact | Subscribe\nSkip to main content",
    "Menu\nHome\nNews\n{section}\nSearch {site}\nSign in | Register",
    "You are here: Home > {section} > Articles\nPosted by {author} on {date}",
    "{site} - {tagline}\nLatest stories in {section}",
    "Advertisement\n{site}\n{section} | Opinion | Video | Podcasts | Newsletters",
)
_FOOTERS = (
    "Copyright (c) {year} {site}. All rights reserved.\nPrivacy Policy | Terms of Use | Cookie Settings",
    "Share this:\nFacebook Twitter Email Print\nLike this: Like Loading...\nRelated posts from {site}",
    "Subscribe to our newsletter to get the latest {section} news from {site} delivered to your inbox.",
    "Comments are closed.\n{site} is a registered trademark of {author} Media Group. Contact us | Careers",
    "Tags: {section}, {tagline}\nPrevious article | Next article\nMore from {site}",
)
_SECTIONS = ("World", "Business", "Culture", "Science", "Sport", "Travel", "Books", "History", "Health")


class _Editor:
    def __init__(self, rng: np.random.Generator, vocabulary: list[str]) -> None:
        self.rng = rng
        self.vocabulary = vocabulary

    def _word(self) -> str:
        return self.vocabulary[int(self.rng.integers(len(self.vocabulary)))]

    def _fill(self, template: str) -> str:
        site = f"The {self._word().capitalize()} {self._word().capitalize()}"
        return template.format(
            site=site,
            section=_SECTIONS[int(self.rng.integers(len(_SECTIONS)))],
            author=self._word().capitalize(),
            tagline=" ".join(self._word() for _ in range(4)),
            year=int(self.rng.integers(2005, 2025)),
            date=f"{int(self.rng.integers(1, 29))} May {int(self.rng.integers(2005, 2025))}",
        )

    def boilerplate(self, text: str) -> str:
        which = self.rng.integers(3)  # 0 header, 1 footer, 2 both
        header = self._fill(_HEADERS[int(self.rng.integers(len(_HEADERS)))]) if which != 1 else ""
        footer = self._fill(_FOOTERS[int(self.rng.integers(len(_FOOTERS)))]) if which != 0 else ""
        return "\n\n".join(part for part in (header, text, footer) if part)

    def truncate(self, text: str) -> str:
        spans = [m.span() for m in _WORD.finditer(text)]
        keep = max(1, int(round(len(spans) * self.rng.uniform(0.45, 0.97))))
        if self.rng.random() < 0.8:
            return text[: spans[keep - 1][1]]
        return text[spans[len(spans) - keep][0] :]

    def substitute(self, text: str) -> str:
        return self._rewrite_words(text, lambda _: self._word(), self.rng.uniform(0.002, 0.05))

    def delete(self, text: str) -> str:
        return self._rewrite_words(text, lambda _: "", self.rng.uniform(0.002, 0.04))

    def _rewrite_words(self, text: str, replace: Any, rate: float) -> str:
        spans = [m.span() for m in _WORD.finditer(text)]
        count = max(1, int(round(len(spans) * rate)))
        chosen = set(self.rng.choice(len(spans), size=min(count, len(spans)), replace=False).tolist())
        pieces, last = [], 0
        for i, (start, end) in enumerate(spans):
            if i in chosen:
                pieces.append(text[last:start])
                pieces.append(replace(text[start:end]))
                last = end
        pieces.append(text[last:])
        return re.sub(r"[ \t]{2,}", " ", "".join(pieces))

    def reorder(self, text: str) -> str:
        joiner, blocks = "\n\n", _PARAGRAPH_BREAK.split(text)
        if len(blocks) < 3:
            joiner, blocks = " ", _SENTENCE_END.split(text)
        if len(blocks) < 2:
            return text
        moves = max(1, int(round(len(blocks) * self.rng.uniform(0.05, 0.3))))
        for _ in range(moves):
            block = blocks.pop(int(self.rng.integers(len(blocks))))
            blocks.insert(int(self.rng.integers(len(blocks) + 1)), block)
        return joiner.join(blocks)

    def whitespace_case(self, text: str) -> str:
        choice = int(self.rng.integers(5))
        if choice == 0:
            return text.lower()
        if choice == 1:
            return text.upper() if len(text) < 2000 else text[:200].upper() + text[200:]
        if choice == 2:
            return re.sub(r"\s*\n\s*", " ", text)  # one long line
        if choice == 3:
            return re.sub(r"([.!?]) ", r"\1  ", text).replace("\n", " \n") + "\n\n"
        return "\t" + text.replace("\n\n", "\n\n\n").replace(" ", "  ", 50)

    def derive(self, text: str, verbatim_share: float) -> tuple[str, tuple[str, ...]]:
        if self.rng.random() < verbatim_share:
            return text, ()
        count = int(self.rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
        edits = self.rng.choice(len(EDITS), size=count, replace=False, p=_EDIT_WEIGHTS / _EDIT_WEIGHTS.sum())
        names = tuple(EDITS[i] for i in sorted(edits))
        for name in names:
            text = getattr(self, name)(text)
        return text, names


# --------------------------------------------------------------------------------------------------
# Exact Jaccard
# --------------------------------------------------------------------------------------------------


def shingle_sets(texts: list[str], ngram: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Each text's set of word-ngram hashes (sorted unique uint32), as the pipeline's MinHash sees it."""
    batch = shingle_hashes(texts, ngram, seed)
    return [np.unique(batch.doc(i)) for i in range(len(batch))]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = len(np.union1d(a, b))
    return len(np.intersect1d(a, b, assume_unique=True)) / union if union else 1.0


def similar_pairs(
    texts: list[str], floor: float, ngram: int = 5, seed: int = 0, block: int = 2000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact Jaccard of ALL pairs of ``texts``: (i, j, jaccard) with i < j and jaccard >= floor.

    A sparse document x shingle incidence matrix times its transpose gives every pair's intersection
    size (only pairs sharing a shingle are ever materialised), a block of rows at a time so memory
    stays bounded; union = |A| + |B| - intersection.
    """
    sets = shingle_sets(texts, ngram, seed)
    sizes = np.array([len(s) for s in sets], dtype=np.int64)
    flat = np.concatenate(sets) if sets else np.zeros(0, np.uint32)
    _, columns = np.unique(flat, return_inverse=True)
    indptr = np.concatenate([[0], np.cumsum(sizes)])
    matrix = csr_matrix(
        (np.ones(len(flat), dtype=np.int32), columns, indptr),
        shape=(len(texts), int(columns.max(initial=-1)) + 1),
    )
    transposed = matrix.T.tocsr()
    out_i, out_j, out_s = [], [], []
    for lo in range(0, len(texts), block):
        product = (matrix[lo : lo + block] @ transposed).tocoo()
        i, j, inter = product.row + lo, product.col, product.data
        upper = i < j
        i, j, inter = i[upper], j[upper], inter[upper]
        similarity = inter / (sizes[i] + sizes[j] - inter)
        keep = similarity >= floor
        out_i.append(i[keep])
        out_j.append(j[keep])
        out_s.append(similarity[keep])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_s)


# --------------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------------


def _doc_id(seed: int, n: int) -> str:
    return hashlib.blake2b(f"neardup\0{seed}\0{n}".encode(), digest_size=8).hexdigest()


def _date(rng: np.random.Generator) -> str:
    start = datetime(2019, 1, 1, tzinfo=UTC)
    return (start + timedelta(seconds=int(rng.integers(0, 5 * 365 * 86400)))).isoformat()


def _vocabulary(texts: list[str], rng: np.random.Generator, size: int = 5000) -> list[str]:
    words = sorted({w for t in texts[:2000] for w in re.findall(r"[A-Za-z]{3,12}", t)})
    if len(words) <= size:
        return words or ["word"]
    return [words[i] for i in np.sort(rng.choice(len(words), size=size, replace=False))]


def generate(spec: CorpusSpec) -> list[_Doc]:
    """All documents, originals then copies, with their family links; no file is written."""
    rng = np.random.default_rng([spec.seed, 1])
    originals = original_texts(spec)
    docs = []
    for n, (kind, text) in enumerate(originals):
        doc_id = _doc_id(spec.seed, n)
        url = f"https://{kind}.example.org/{doc_id}"
        docs.append(_Doc(doc_id, text, kind, url, _date(rng), origin=doc_id))
    editor = _Editor(rng, _vocabulary([t for _, t in originals], rng))
    with_copies = rng.random(len(docs)) < spec.dup_share
    next_id = len(docs)
    for original in [d for d, chosen in zip(docs, with_copies, strict=True) if chosen]:
        family = [original]
        for _ in range(int(rng.integers(1, spec.max_copies + 1))):
            parent = family[-1] if len(family) > 1 and rng.random() < spec.chain_share else original
            text, edits = editor.derive(parent.text, spec.verbatim_share)
            doc_id = _doc_id(spec.seed, next_id)
            next_id += 1
            url = f"https://mirror{int(rng.integers(100))}.example.net/{doc_id}"
            copy = _Doc(doc_id, text, parent.kind, url, _date(rng), original.id, parent.id, edits)
            family.append(copy)
            docs.append(copy)
    return docs


def _assign_shards(docs: list[_Doc], shards: int, rng: np.random.Generator) -> list[list[_Doc]]:
    where: dict[str, int] = {}
    out: list[list[_Doc]] = [[] for _ in range(shards)]
    for doc in docs:
        shard = int(rng.integers(shards))
        if doc.parent is not None and shards > 1:
            while shard == where[doc.parent]:
                shard = int(rng.integers(shards))
        where[doc.id] = shard
        out[shard].append(doc)
    for shard_docs in out:
        rng.shuffle(shard_docs)  # type: ignore[arg-type]
    return out


def _family_pairs(docs: list[_Doc], ngram: int) -> Iterator[dict[str, Any]]:
    families: dict[str, list[_Doc]] = {}
    for doc in docs:
        families.setdefault(doc.origin, []).append(doc)
    for members in families.values():
        if len(members) < 2:
            continue
        sets = shingle_sets([d.text for d in members], ngram)
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                a, b = members[x], members[y]
                yield {
                    "a": a.id,
                    "b": b.id,
                    "jaccard": round(jaccard(sets[x], sets[y]), 6),
                    "relation": "parent" if b.parent == a.id else "family",
                    "edits": list(b.edits) if b.parent == a.id else None,
                }


def build_corpus(cache_dir: Path, spec: CorpusSpec | None = None) -> Corpus:
    """Write (or reuse) the corpus for ``spec`` under ``cache_dir/neardup-<spec hash>/``."""
    spec = spec or CorpusSpec()
    folder = cache_dir / f"neardup-{spec.key()}"
    info_path = folder / "corpus.json"
    if info_path.exists():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        return Corpus(
            folder,
            [folder / name for name in info["shards"]],
            folder / "truth.jsonl.gz",
            info["documents"],
            info["derived"],
            spec,
        )
    from curate.jsonl_files import write_jsonl

    folder.mkdir(parents=True, exist_ok=True)
    docs = generate(spec)
    rng = np.random.default_rng([spec.seed, 2])
    names = []
    for n, shard_docs in enumerate(_assign_shards(docs, spec.shards, rng)):
        name = f"shard-{n:03d}.jsonl.gz"
        write_jsonl(
            folder / name,
            ({"id": d.id, "text": d.text, "url": d.url, "crawl_date": d.crawl_date} for d in shard_docs),
        )
        names.append(name)
    write_jsonl(folder / "truth.jsonl.gz", _family_pairs(docs, spec.ngram))
    derived = sum(d.parent is not None for d in docs)
    info = {"spec": asdict(spec), "shards": names, "documents": len(docs), "derived": derived}
    write_atomic(info_path, json.dumps(info, indent=1))
    return Corpus(folder, [folder / n for n in names], folder / "truth.jsonl.gz", len(docs), derived, spec)

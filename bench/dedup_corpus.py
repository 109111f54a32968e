"""The corpora `curate bench dedup` measures: JSONL shards given with --input, or one generated from
real text.

Generated corpus (no ``--input``): real text from ``../shared/data``'s Project Gutenberg books, cut into
passages whose cut points shift every round; a document joins two passages from far-apart places of the
round's book order (which is reshuffled every round), so passages reused in a later round never make
whole documents alike (at 100k documents dedup finds ~10 duplicates besides the injected ones). On top,
``dup_rate`` of the documents are near-copies of an earlier document (a third verbatim, the rest with
shifted cut points: up to 4% of the words dropped at either end), often in another shard.
Shards are zstd JSONL in ``.cache/bench/dedup/<spec>/``, built once and reused.
"""

from __future__ import annotations

import glob
import json
import random
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from curate.errors import ConfigError

BENCH_CACHE = Path(".cache/bench/dedup")
CORPUS_VERSION = 1
GLOB_CHARS = "*?["


# ----------------------------------------------------------------------------------------------------------
# Generated corpus


@dataclass(frozen=True)
class DedupCorpusSpec:
    """A generated benchmark corpus; its fields name its cache folder, so a new spec is a new corpus."""

    docs: int
    seed: int = 0
    dup_rate: float = 0.1  # share of documents that are copies of an earlier one
    passage_min: int = 500  # characters of each of a document's two passages (uniform in [min, max])
    passage_max: int = 2000
    shard_docs: int = 25_000

    def key(self) -> str:
        return (
            f"v{CORPUS_VERSION}-{self.docs}docs-s{self.seed}-dup{self.dup_rate:g}"
            f"-p{self.passage_min}-{self.passage_max}-sh{self.shard_docs}"
        )


def _books(shared: Path) -> list[str]:
    books = []
    for path in sorted((shared / "domains" / "books").glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if text:
            books.append(text)
    if not books:
        raise ConfigError(f"no books in {shared / 'domains' / 'books'}: the dedup benchmark needs them")
    return books


def _passages(stream: str, rng: random.Random, low: int, high: int) -> list[str]:
    """Cut ``stream`` into passages of ``low..high`` characters at whitespace, from a random shift."""
    out = []
    start = stream.find(" ", rng.randrange(high)) + 1
    while 0 < start < len(stream):
        end = stream.find(" ", start + rng.randint(low, high))
        end = len(stream) if end < 0 else end
        passage = stream[start:end].strip()
        if passage:
            out.append(passage)
        start = end + 1
    return out


def _near_copy(text: str, rng: random.Random) -> str:
    """A third verbatim; else the same text with cut points moved by up to 4% of its words per end."""
    if rng.random() < 1 / 3:
        return text
    words = text.split(" ")
    most = max(1, len(words) // 25)
    head, tail = rng.randint(0, most), rng.randint(0, most)
    return " ".join(words[head : len(words) - tail] or words)


def generate_documents(books: Sequence[str], spec: DedupCorpusSpec) -> Iterator[dict[str, Any]]:
    """``spec.docs`` documents, deterministic for a spec; copies name their original in ``copy_of``."""
    rng = random.Random(spec.seed)
    # (id, text) of earlier originals that copies are drawn from: 20,000 of them, each new original taking
    # a random place once the pool is full, so copies reach back over several shards.
    pool: list[tuple[str, str]] = []
    emitted = 0
    round_no = 0
    while True:
        order = list(range(len(books)))
        rng.shuffle(order)
        pieces = _passages("\n\n".join(books[i] for i in order), rng, spec.passage_min, spec.passage_max)
        half = len(pieces) // 2
        for k in range(half):
            if emitted >= spec.docs:
                return
            if pool and rng.random() < spec.dup_rate:
                original_id, original = pool[rng.randrange(len(pool))]
                yield {"id": f"c{emitted}", "text": _near_copy(original, rng), "copy_of": original_id}
            else:
                doc_id = f"r{round_no}-{k}"
                text = pieces[k] + "\n\n" + pieces[k + half]
                yield {"id": doc_id, "text": text}
                if len(pool) < 20_000:
                    pool.append((doc_id, text))
                else:
                    pool[rng.randrange(len(pool))] = (doc_id, text)
            emitted += 1
        round_no += 1


def build_dedup_corpus(spec: DedupCorpusSpec, cache_dir: Path = BENCH_CACHE) -> Path:
    """The corpus's folder (``shard-*.jsonl.zst`` and ``corpus.json``), generated on first use."""
    from curate.jsonl_files import write_jsonl
    from curate.textsources import shared_data_dir

    folder = cache_dir / spec.key()
    if (folder / "corpus.json").exists():
        return folder
    shared = shared_data_dir()
    if shared is None:
        raise ConfigError("without --input the dedup benchmark needs ../shared/data (or CURATE_SHARED_DATA)")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    documents = generate_documents(_books(shared), spec)
    stats = {"docs": 0, "copies": 0, "text_bytes": 0}

    def take(n: int) -> Iterator[dict[str, Any]]:
        for _, doc in zip(range(n), documents, strict=False):
            stats["docs"] += 1
            stats["copies"] += "copy_of" in doc
            stats["text_bytes"] += len(doc["text"].encode())
            yield doc

    for index in range((spec.docs + spec.shard_docs - 1) // spec.shard_docs):
        write_jsonl(folder / f"shard-{index:04d}.jsonl.zst", take(spec.shard_docs))
    (folder / "corpus.json").write_text(json.dumps({"spec": asdict(spec), **stats}, indent=1))
    return folder


# ----------------------------------------------------------------------------------------------------------
# Inputs


def _looks_jsonl(name: str) -> bool:
    return any(ext in name.lower() for ext in (".json", ".ndjson"))


def expand_inputs(patterns: Sequence[str]) -> list[Path]:
    """Files named by ``patterns``: a file, a glob, or a folder (its ``*.json*`` / ``*.ndjson*`` files)."""
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if any(c in pattern for c in GLOB_CHARS):
            matches = [Path(p) for p in sorted(glob.glob(str(path), recursive=True)) if Path(p).is_file()]
        elif path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.is_file() and _looks_jsonl(p.name))
        else:
            matches = [path] if path.is_file() else []
        if not matches:
            raise ConfigError(f"--input {pattern}: matches no file; pass a JSONL shard, a glob or a folder")
        files += [m.resolve() for m in matches]
    return list(dict.fromkeys(files))


def read_texts(files: Sequence[Path], max_docs: int | None = None, max_bytes: int | None = None) -> list[str]:
    """Texts of the JSONL ``files`` in order (the pipeline's own reader and field names), up to a cap."""
    from curate.readers.batches import ShardSource, read_batches
    from curate.readers.fields import FieldMap

    texts: list[str] = []
    size = 0
    if max_docs is not None and max_docs <= 0:
        return texts
    for path in files:
        for batch in read_batches(ShardSource(path, path.name, "jsonl", FieldMap()), 1000, 1 << 26):
            for text in batch.docs.column("text").to_pylist():
                texts.append(text)
                size += len(text.encode())
                if (max_docs is not None and len(texts) >= max_docs) or (
                    max_bytes is not None and size >= max_bytes
                ):
                    return texts
    return texts


def write_subset(texts: Sequence[str], path: Path) -> None:
    import orjson

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as sink:
        for n, text in enumerate(texts):
            sink.write(orjson.dumps({"id": f"d{n:08d}", "text": text}) + b"\n")


def pipeline_config(files: Sequence[Path], first: int, out: Path, dedup: dict[str, Any]) -> Any:
    """The config of a normalize + dedup run over ``files``; input i is named by its place in the whole
    corpus (``first`` + i), so a document's `source` is the same in every chunk and every size."""
    from curate.config import parse_config, resolve_paths
    from curate.schema import UNASSIGNED_DOMAIN

    raw = {
        "inputs": [
            {
                "path": glob.escape(str(f)),
                "name": f"s{first + i:05d}",
                "format": "jsonl",
                "domain": UNASSIGNED_DOMAIN,
            }
            for i, f in enumerate(files)
        ],
        "stages": [{"normalize": {}}],
        "dedup": dedup,
    }
    return resolve_paths(parse_config(raw, "bench"), out.parent, str(out))

"""A real curated corpus for the mixer tests, built once per test session.

Text comes from packages (gensim's Wikipedia pages and news, the standard library as code), runs through
the real pipeline (normalize, tag) plus `mixtest_scores`, a small real scoring stage defined here so the
corpus has score columns to select on: `quality` (share of ASCII letters in the text) and `ppl_bucket`
(head / middle / tail cut from it). It runs in-process (one local worker), so registering it here is enough.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from api.demo import build_package_shards
from curate.config import parse_config, resolve_paths
from curate.jsonl_files import write_jsonl
from curate.run import run_pipeline
from curate.stages.base import Stage, StageResult, set_columns
from curate.stages.registry import register, stage_names
from curate.textsources import stdlib_sources, wikipedia_pages

HEAD, MIDDLE = 0.79, 0.75
TOKENIZER_VOCAB = 1024
CODE_FILES = 80
WIKI_PAGES = 100
WIKI_URL = "https://en.wikipedia.org/wiki/"
TOKENIZER_CHARS = 600_000


class MixtestScores(Stage):
    name = "mixtest_scores"

    def output_fields(self) -> list[pa.Field]:
        return [pa.field("quality", pa.float64()), pa.field("ppl_bucket", pa.string())]

    def process(self, batch: pa.Table) -> StageResult:
        text = batch.column("text")
        letters = pc.utf8_length(pc.replace_substring_regex(text, "[^A-Za-z]", ""))
        quality = pc.divide(pc.cast(letters, pa.float64()), pc.max_element_wise(pc.utf8_length(text), 1))
        bucket = pc.if_else(
            pc.greater_equal(quality, HEAD),
            "head",
            pc.if_else(pc.greater_equal(quality, MIDDLE), "middle", "tail"),
        )
        return StageResult(set_columns(batch, {"quality": quality, "ppl_bucket": bucket}))


@dataclass(frozen=True)
class MixCorpus:
    out: Path
    tokenizer: Path
    root: Path

    def spec(self, **overrides: Any) -> dict[str, Any]:
        """A valid estimate-mode spec over wiki and news; tests override what they exercise."""
        spec: dict[str, Any] = {
            "corpora": [str(self.out)],
            "budget": 200_000,
            "seed": 7,
            "tokenizer": {"chars_per_token": 4.0},
            "max_epochs": 1,
            "domains": {"wiki": {"weight": 0.75}, "news": {"weight": 0.25}},
        }
        spec.update(overrides)
        return spec

    def write_spec(self, name: str, spec: dict[str, Any]) -> Path:
        path = self.root / "specs" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        return path


_BUILT: dict[Path, MixCorpus] = {}


def build_mix_corpus(root: Path) -> MixCorpus:
    """Shards -> pipeline -> corpus, and a small tokenizer trained on it; memoised per root."""
    if root in _BUILT:
        return _BUILT[root]
    if MixtestScores.name not in stage_names():  # registered only when a mixer test needs the corpus
        register(MixtestScores)
    shards = root / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    # Fewer pages and modules than the demo's (same sources), which keeps the tokenizer passes quick.
    code = ({"id": f"stdlib/{name}", "text": source} for name, source in stdlib_sources(CODE_FILES))
    write_jsonl(shards / "code.jsonl.zst", code)
    pages = islice(wikipedia_pages(), WIKI_PAGES)
    write_jsonl(
        shards / "wiki.jsonl.gz",
        ({"title": t, "text": x, "url": WIKI_URL + t.replace(" ", "_")} for t, x in pages),
    )
    build_package_shards(shards)  # adds the news shard
    raw = {
        "inputs": [
            {"path": str(shards / "wiki.jsonl.gz"), "name": "wiki", "domain": "wiki"},
            {"path": str(shards / "news.jsonl.gz"), "name": "news", "domain": "news"},
            {"path": str(shards / "code.jsonl.zst"), "name": "code", "domain": "code"},
        ],
        "stages": [{"normalize": {}}, {"tag": {}}, {"mixtest_scores": {}}],
    }
    config = resolve_paths(parse_config(raw, where="mix test corpus"), base=root, out=str(root / "out"))
    run_pipeline(config, "local", 1, progress=False)
    corpus = MixCorpus(root / "out", _tokenizer(root), root)
    _BUILT[root] = corpus
    return corpus


def _tokenizer(root: Path) -> Path:
    from api.demo_mixture import corpus_texts
    from trainer.tokenizer import train_tokenizer

    texts = list(corpus_texts(root / "out", TOKENIZER_CHARS))
    return train_tokenizer(texts, TOKENIZER_VOCAB, cache_dir=root / "tokenizers", max_chars=TOKENIZER_CHARS)


def manifest_of(mix: Path) -> dict[str, Any]:
    return json.loads((mix / "manifest.json").read_text(encoding="utf-8"))


def mix_files(mix: Path) -> dict[str, bytes]:
    """Every file of a mixture folder by relative path, for byte-for-byte comparisons."""
    return {str(p.relative_to(mix)): p.read_bytes() for p in sorted(mix.rglob("*")) if p.is_file()}

"""The embedded default main job (`make demo`): real text in, a curated corpus out, in a few minutes.

With ../shared/data present it reads the real web shards (JSONL, C4, WARC, WET) and books as found; on
any machine it also builds small shards from text that pip-installed packages ship (gensim's Wikipedia
pages and news, the standard library's source as code), so the demo never depends on a download.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from curate.config import load_config
from curate.errors import ConfigError
from curate.jsonl_files import write_jsonl
from curate.run import RUN_RECORD, run_pipeline
from curate.textsources import book_passages, news_texts, shared_data_dir, stdlib_sources, wikipedia_pages

DEMO_BOOKS = 12


def build_package_shards(folder: Path) -> None:
    """Shards from package-shipped text: Wikipedia (.jsonl.gz), news (.jsonl.gz), stdlib code (.jsonl.zst)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "wiki.jsonl.gz").exists():
        write_jsonl(
            folder / "wiki.jsonl.gz",
            (
                {"title": t, "text": x, "url": "https://en.wikipedia.org/wiki/" + t.replace(" ", "_")}
                for t, x in wikipedia_pages()
            ),
        )
    if not (folder / "news.jsonl.gz").exists():
        write_jsonl(folder / "news.jsonl.gz", ({"content": text} for text in news_texts()))
    if not (folder / "code.jsonl.zst").exists():
        write_jsonl(
            folder / "code.jsonl.zst", ({"id": f"stdlib/{n}", "text": s} for n, s in stdlib_sources(400))
        )


def build_book_shard(folder: Path, books_dir: Path) -> None:
    path = folder / "books.jsonl.gz"
    if path.exists():
        return
    chosen = sorted(books_dir.glob("*.txt"))[:DEMO_BOOKS]
    staging = folder / "_books"
    staging.mkdir(exist_ok=True)
    for book in chosen:
        link = staging / book.name
        if not link.exists():
            link.symlink_to(book)
    write_jsonl(path, ({"id": key, "text": text} for key, text in book_passages(staging)))


def demo_config(cache: Path, out: Path) -> dict[str, Any]:
    shards = cache / "shards"
    inputs: list[dict[str, Any]] = [
        {"path": str(shards / "wiki.jsonl.gz"), "name": "wiki", "domain": "wiki"},
        {"path": str(shards / "news.jsonl.gz"), "name": "news", "domain": "news"},
        {"path": str(shards / "code.jsonl.zst"), "name": "code", "domain": "code"},
    ]
    shared = shared_data_dir()
    if shared is not None:
        web = shared / "web"
        inputs += [
            {"path": str(web / "*.json*"), "name": "web"},
            {"path": str(web / "*.warc.gz"), "name": "warc"},
            {"path": str(web / "*.wet.gz"), "name": "wet", "format": "wet"},
            {"path": str(shards / "books.jsonl.gz"), "name": "books", "domain": "books"},
        ]
    return {
        "inputs": inputs,
        "stages": demo_stages(shared is not None),
        "dedup": {"index": str(cache / "dedup-index")},
        "output": str(out),
    }


WEB = ["web"]


def demo_stages(with_shared: bool) -> list[dict[str, Any]]:
    """Web pages are judged as the published pipelines judge them: English by fastText LID at FineWeb's
    0.65, then the Gopher, C4 and FineWeb rules at their papers' thresholds, dropping with the failed
    rule's code. Wikipedia, books, news and code are curated sources, not judged by web rules
    (`domains: [web]`). Every document is scored (perplexity, toxicity, quality); clear toxicity is
    dropped here, and the mixture selects web pages by perplexity bucket (see `api.demo_mixture`). The
    harmful-text LM and the quality classifier are trained on ../shared/data, so without it the demo runs
    without them (toxicity then falls back to the word list)."""
    rules = [{"domain": "wiki", "site": "wikipedia.org"}, {"domain": "code", "site": ["github.com"]}]
    stages: list[dict[str, Any]] = [
        {"normalize": {}},
        {"tag": {"domain": {"default": "web", "rules": rules}}},
        {"langid": {"langs": ["en"], "domains": WEB}},
        {"heuristics": {"mode": "drop", "domains": WEB}},
        {"perplexity": {}},
    ]
    if with_shared:
        stages.append({"harmful_ppl": {"drop_below": None}})
    stages.append({"toxicity": {"max_toxicity": 0.9}})
    if with_shared:
        stages.append({"quality": {}})
    return stages


def ensure_demo_models(with_shared: bool) -> None:
    """Models are built, not downloaded: train the ones the demo uses when they are missing (once)."""
    from filters import commands
    from filters.model_registry import find_model

    wanted = [("wiki-5gram", lambda: commands.train_lm("wiki-5gram", "reference", books_mb=5.0))]
    if with_shared:
        wanted += [
            ("harmful-5gram", lambda: commands.train_lm("harmful-5gram", "harmful")),
            ("toxicity", lambda: commands.train_toxicity("toxicity")),
            ("quality", lambda: commands.train_quality("quality", "wiki-5gram", books_mb=5.0)),
        ]
    for name, train in wanted:
        if find_model(name) is None:
            train()


def run_demo(
    out: Path, workers: int, proxy_tokens: int = 100_000, cache: Path = Path(".cache/demo")
) -> dict[str, Any]:
    shards = cache / "shards"
    build_package_shards(shards)
    shared = shared_data_dir()
    if shared is not None and (shared / "domains" / "books").is_dir():
        build_book_shard(shards, shared / "domains" / "books")
    ensure_demo_models(shared is not None)
    config_path = cache / "pipeline.yaml"
    config_path.write_text(yaml.safe_dump(demo_config(cache.resolve(), out.resolve()), sort_keys=False))
    config = load_config(config_path)
    discard_stale_demo_output(out, cache / "dedup-index", config.config_hash())
    manifest = run_pipeline(config, "local", workers)
    from api.demo_mixture import demo_mixture

    manifest["mixture"] = demo_mixture(out, out.parent / "mix")
    manifest["proxy"] = demo_proxy_score(out.parent / "mix", out.parent / "proxy", proxy_tokens)
    return manifest


def demo_decisions(manifest: dict[str, Any]) -> list[str]:
    """What the filters and the mixture decided, in words, so the funnel is read as decisions."""
    dropped = {stage["stage"]: sum(stage["dropped"].values()) for stage in manifest["stages"]}
    lines = [
        f"decisions: langid dropped {dropped.get('langid', 0):,} web pages (not English at fastText "
        f"score 0.65, as FineWeb), heuristics {dropped.get('heuristics', 0):,} (Gopher, C4 and FineWeb "
        f"rules at their published thresholds), toxicity {dropped.get('toxicity', 0):,} (score > 0.9); "
        "wiki, books, news and code are curated sources, not judged by web rules"
    ]
    web = manifest.get("mixture", {}).get("domains", {}).get("web")
    if web is not None:
        kept = manifest["domains"].get("web", 0)
        lines.append(
            f"mixture: web pages selected by `{web['where']}` (CCNet's head and middle buckets): "
            f"{web['available_documents']:,} of the {kept:,} kept"
        )
    return lines


def demo_proxy_score(mix: Path, run: Path, tokens: int) -> dict[str, Any]:
    """The main job ends where training starts: a tiny NVFP4 proxy trained on the mixture, scored by
    bits per byte per domain on the mixture's evaluation suite. Re-running resumes from (or reuses) the
    run's checkpoint; a run the demo trained under another config of its own (an older demo, another
    `tokens`) is retrained."""
    from trainer.commands import score_command

    def score() -> dict[str, Any]:
        return score_command(
            mix, run, size="tiny", precision="nvfp4", tokens=tokens, seed=0, threads=1
        )

    try:
        return score()
    except ConfigError:
        if not (run / "config.json").is_file():
            raise
        shutil.rmtree(run)  # the demo's own folder, left by an earlier version of the demo
        return score()


def discard_stale_demo_output(out: Path, index: Path, config_hash: str) -> None:
    """The demo's output and dedup index are ours to replace when the demo's own config changed (a new
    stage landed): otherwise the new run would find all its documents already in the old run's index."""
    record = out / RUN_RECORD
    if record.exists() and json.loads(record.read_text(encoding="utf-8")).get("config_hash") != config_hash:
        shutil.rmtree(out)
        shutil.rmtree(index, ignore_errors=True)

"""The pool of `curate bench filtering`: real web documents, curated once with the filter models (scores
kept, nothing dropped), and the models' cards, so both arms sample from one scored corpus."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import ConfigError

HELD_OUT_PERCENT = 10
POOL_DOMAIN = "web"
HELD_OUT_DOMAIN = "heldout"
DCLM_FILE = "quality/dclm_majority_data.jsonl"
LM_MODEL = "wiki-5gram"
QUALITY_MODEL = "quality"


def is_held_out(doc_id: str) -> bool:
    """A fixed, seed-free split: the same documents are held out on every run and every machine."""
    return int(hashlib.md5(doc_id.encode()).hexdigest()[:8], 16) % 100 < HELD_OUT_PERCENT


def pool_documents(shared: Path, max_docs: int | None = None) -> list[dict[str, Any]]:
    """General-crawl documents and the DCLM web sample as {id, text, label}; ``max_docs`` keeps every
    k-th document (for a quick run), so both sources stay represented."""
    from filters.quality_recipe import JOURNALISM, crawl_documents

    docs: list[dict[str, Any]] = [
        {"id": key, "text": text, "label": None}
        for key, text in crawl_documents(shared)
        if not any(name in key for name in JOURNALISM)  # the quality model's positives: not a fair pool
    ]
    lines = (shared / DCLM_FILE).read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if line.strip():
            row = json.loads(line)
            docs.append({"id": f"dclm/{index}", "text": row["text"], "label": int(row["label"])})
    if max_docs is not None and max_docs < len(docs):
        stride = len(docs) / max_docs
        docs = [docs[int(i * stride)] for i in range(max_docs)]
    return docs


def write_pool_shards(docs: list[dict[str, Any]], folder: Path) -> dict[str, Path]:
    """The pool and its held-out slice as two byte-stable JSONL.gz inputs (rewritten only on change)."""
    from curate.jsonl_files import write_jsonl

    folder.mkdir(parents=True, exist_ok=True)
    paths = {POOL_DOMAIN: folder / "pool.jsonl.gz", HELD_OUT_DOMAIN: folder / "heldout.jsonl.gz"}
    for domain, path in paths.items():
        wanted = [
            {"id": d["id"], "text": d["text"]}
            for d in docs
            if is_held_out(d["id"]) == (domain != POOL_DOMAIN)
        ]
        payload = b"".join(orjson.dumps(row) + b"\n" for row in wanted)
        if not path.exists() or gzip.decompress(path.read_bytes()) != payload:
            write_jsonl(path, wanted)
    return paths


@dataclass(frozen=True)
class FilterModels:
    """Which registry models annotate the pool: the KenLM reference LM (None: no perplexity stage) and
    the quality classifier (it ensembles with the LM it was trained with, if any)."""

    lm: str | None = LM_MODEL
    quality: str = QUALITY_MODEL
    home: Path | None = None

    def names(self) -> list[str]:
        return [name for name in (self.lm, self.quality) if name]


def pipeline_config(shards: dict[str, Path], out: Path, models: FilterModels) -> dict[str, Any]:
    """Annotate-only stages (no stage drops a document) and dedup across pool and held-out slice."""
    home = {"models_dir": str(models.home.resolve())} if models.home else {}
    stages: list[dict[str, Any]] = [
        {"normalize": {}},
        {"langid": {"min_score": 0.0}},
        {"heuristics": {"mode": "annotate"}},
    ]
    if models.lm:
        stages.append({"perplexity": {"model": models.lm, **home}})
    stages.append({"quality": {"model": models.quality, **home}})
    return {
        "inputs": [
            {"path": str(path.resolve()), "name": domain, "domain": domain} for domain, path in shards.items()
        ],
        "stages": stages,
        "dedup": {},
        "output": str(out.resolve()),
    }


def ensure_filter_models(models: FilterModels) -> None:
    """Models are built, not downloaded: the default LM and quality ensemble are trained once when
    missing (as the demo does); another name must already exist."""
    from filters import commands
    from filters.model_registry import find_model

    if models.lm and find_model(models.lm, models.home) is None:
        if models.lm != LM_MODEL:
            raise ConfigError(f"KenLM model {models.lm!r} is missing; train it: curate models train-lm")
        commands.train_lm(LM_MODEL, "reference", books_mb=5.0, home=models.home)
    if find_model(models.quality, models.home) is None:
        if models.quality != QUALITY_MODEL:
            raise ConfigError(f"quality model {models.quality!r} is missing; curate models train-quality")
        commands.train_quality(QUALITY_MODEL, models.lm, books_mb=5.0, home=models.home)


def curate_pool(shards: dict[str, Path], out: Path, workers: int, models: FilterModels) -> dict[str, Any]:
    """Run the pipeline once; a finished corpus of the same config is reused (its manifest returned)."""
    import yaml

    from curate.config import load_config
    from curate.run import RUN_RECORD, run_pipeline

    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "pipeline.yaml"
    config_path.write_text(yaml.safe_dump(pipeline_config(shards, out / "corpus", models), sort_keys=False))
    config = load_config(config_path)
    corpus = out / "corpus"
    record, manifest, cards = corpus / RUN_RECORD, corpus / "manifest.json", out / "corpus-models.json"
    stamp = json.dumps(model_cards(models), sort_keys=True)
    same_models = cards.exists() and cards.read_text() == stamp
    if record.exists() and (
        json.loads(record.read_text()).get("config_hash") != config.config_hash() or not same_models
    ):
        shutil.rmtree(corpus)  # ours to replace: the pool, the stages or a model (re-trained) changed
    if manifest.exists() and record.exists():
        return json.loads(manifest.read_text())
    result = run_pipeline(config, "local", workers, progress=False)
    cards.write_text(stamp)
    return result


def model_cards(models: FilterModels) -> dict[str, dict[str, Any]]:
    """Which trained filter models scored the pool (name, creation time, training data checksums): the
    config names a model, but re-training it changes the scores, so the corpus is keyed on these too."""
    from filters.model_registry import find_model

    cards = {}
    for name in models.names():
        model = find_model(name, models.home)
        card = model.card if model is not None else None
        cards[name] = {
            "created": card.created if card else None,
            "data_sha256": [d.get("sha256") for d in card.data] if card else [],
        }
    return cards


def corpus_rows(corpus: Path, domain: str, columns: tuple[str, ...] = ("id", "text", "quality")) -> pa.Table:
    """One domain's kept documents (a few MB here), in a stable order (by id)."""
    from mixers.corpus import open_corpora

    parts = [str(p.path) for p in open_corpora([str(corpus)]).parts_for([domain])]
    table = pa.concat_tables(pq.read_table(path, columns=list(columns)) for path in parts)
    return table.sort_by("id")

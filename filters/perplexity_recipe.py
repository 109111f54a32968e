"""How the `perplexity` and `harmful_ppl` stages' KenLM models are trained, evaluated and calibrated
(`curate models train-lm`, `curate models calibrate-lm`).

- reference models (`corpus: reference`): Wikipedia (gensim's pages + WikiText-2) and up to `books_mb` of
  Gutenberg books, as CCNet's reference LM is trained on Wikipedia.
- harmful models (`corpus: harmful`): 4chan threads, tweets labelled hateful/offensive, Stormfront
  sentences labelled hate (`harmful_documents`).
Every 20th document (5%) is held out of training; the card records its token-weighted perplexity, the
data checksums and the order/pruning. The head/middle/tail cut-offs are CCNet's 30th/60th percentiles of
perplexity on a reference sample (`bucket_sample`: ../shared/data/web, else held-out reference text plus
gensim's news), stored in the card; `calibrate_lm` re-computes them on a sample of one's own crawl. A
harmful model's card also gets `flag_below`: the perplexity with the best balanced accuracy between
held-out harmful documents and clean ones (gensim's Wikipedia pages and news), with its ROC-AUC.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from curate.readers.fields import FieldMap
from curate.readers.formats import infer_format, reader_for
from curate.readers.records import RawDoc
from curate.textsources import shared_data_dir
from filters import corpora
from filters.kenlm_lm import load_kenlm, perplexities
from filters.kenlm_training import corpus_perplexity, train_kenlm, write_corpus
from filters.metrics import roc_auc
from filters.model_registry import Model, ModelCard, ModelWriter, require_model, texts_checksum
from filters.perplexity import KIND

DEFAULT_PERCENTILES = (30.0, 60.0)
HELD_OUT_EVERY = 20  # every 20th document (5%) is held out of training for evaluation

# ------------------------------------------------------------------------------------------- corpora

Corpus = Literal["reference", "harmful"]


def training_documents(corpus: Corpus, shared: Path | None, books_chars: int | None) -> list[corpora.Doc]:
    """The documents a model of this corpus is trained on (before the held-out split)."""
    if corpus == "reference":
        return list(corpora.lm_reference_documents(shared, books_chars))
    toxicity = shared / "toxicity" if shared is not None else None
    if toxicity is None or not toxicity.is_dir():
        raise FileNotFoundError(
            "the harmful-text LM needs ../shared/data/toxicity (or CURATE_SHARED_DATA pointing at the data)"
        )
    return harmful_documents(toxicity)


def harmful_documents(toxicity: Path) -> list[corpora.Doc]:
    """4chan threads, tweets labelled hateful/offensive, Stormfront sentences labelled hate."""
    docs = list(corpora.fourchan_threads(toxicity))
    docs += [(f"davidson/{i}", t) for i, (t, y) in enumerate(corpora.davidson_examples(toxicity)) if y]
    docs += [(f"stormfront/{i}", t) for i, (t, y) in enumerate(corpora.stormfront_examples(toxicity)) if y]
    return docs


def split_held_out(docs: list[corpora.Doc]) -> tuple[list[corpora.Doc], list[corpora.Doc]]:
    train = [doc for i, doc in enumerate(docs) if i % HELD_OUT_EVERY != HELD_OUT_EVERY // 2]
    held = [doc for i, doc in enumerate(docs) if i % HELD_OUT_EVERY == HELD_OUT_EVERY // 2]
    return train, held


def bucket_sample(shared: Path | None, held_out: list[corpora.Doc]) -> tuple[str, list[str]]:
    """Documents whose perplexity percentiles define the buckets: web text when there is any (CCNet
    computes cut-offs on the crawl itself), else held-out reference text plus gensim's news."""
    web = [text for _, text in corpora.web_documents(shared)]
    if len(web) >= 50:
        return "../shared/data/web", web
    news = [text for _, text in corpora.news_documents()]
    return "held-out reference + gensim news", [text for _, text in held_out] + news


def cutoffs_for(ppl: np.ndarray, percentiles: tuple[float, float]) -> list[float]:
    finite = ppl[np.isfinite(ppl)]
    return [round(float(v), 3) for v in np.percentile(finite, percentiles)]


# ------------------------------------------------------------------------------------------ training


def train_lm(
    name: str = "wiki-5gram",
    corpus: Corpus = "reference",
    order: int = 5,
    books_mb: float | None = 20.0,
    prune: list[int] | None = None,
    memory: str = "1G",
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    home: Path | None = None,
    log=print,
) -> Model:
    """Train a KenLM model on the reference (Wikipedia + books) or harmful corpus and register it.

    The card records: data checksums, order/pruning, held-out perplexity (5% of documents), the bucket
    cut-offs on a reference sample, and for a harmful model the `flag_below` threshold and its AUC.
    """
    shared = shared_data_dir()
    books_chars = None if books_mb is None else int(books_mb * 1e6)
    train, held = split_held_out(training_documents(corpus, shared, books_chars))
    return register_lm(
        name,
        LmData(train, held, _data_entries(train), bucket_sample(shared, held)),
        {"corpus": corpus, "books_mb": books_mb},
        LmSettings(order, prune, memory, percentiles),
        home,
        log,
    )


@dataclass(frozen=True)
class LmData:
    """What a KenLM model is trained and evaluated on: training and held-out documents, the card's data
    entries, and the (source, texts) sample whose perplexity percentiles set the bucket cut-offs."""

    train: list[corpora.Doc]
    held: list[corpora.Doc]
    entries: list[dict[str, Any]]
    bucket_sample: tuple[str, list[str]]


@dataclass(frozen=True)
class LmSettings:
    order: int = 5
    prune: list[int] | None = None  # default: [0, 0, 1] from order 3 (singleton 3+-grams dropped)
    memory: str = "1G"
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES


def register_lm(
    name: str, data: LmData, params: dict[str, Any], settings: LmSettings, home: Path | None, log=print
) -> Model:
    """lmplz + build_binary on the training documents, evaluated on the held-out ones, registered with
    its card (`params` says where the text came from: corpus, books_mb, or a user's files and language).
    A `harmful` corpus also gets the `flag_below` threshold."""
    order = settings.order
    prune = settings.prune if settings.prune is not None else ([0, 0, 1] if order >= 3 else [])
    corpus = params.get("corpus")
    size = f"{len(data.train):,} {corpus} documents ({_mb(data.train):.1f} MB)"
    log(f"training {order}-gram {name!r} on {size}")
    with ModelWriter(name, home) as writer:
        stats = write_corpus((text for _, text in data.train), writer.directory / "corpus.txt")
        facts = train_kenlm(
            writer.directory / "corpus.txt", writer.directory, order, prune, settings.memory, log=log
        )
        (writer.directory / "corpus.txt").unlink()
        model = load_kenlm(str(writer.directory / facts["binary"]))
        metrics: dict[str, Any] = {
            "train_documents": len(data.train),
            "held_out_documents": len(data.held),
            "held_out_ppl": round(corpus_perplexity(model, [t for _, t in data.held]), 3),
            **stats,
            **facts,
        }
        extra = _bucket_extra(model, data.bucket_sample, settings.percentiles)
        if corpus == "harmful":
            extra.update(_flag_threshold(model, data.held, metrics))
        card = ModelCard(
            name=name,
            kind=KIND,
            files={"model": facts["binary"]},
            params={
                **params,
                "order": order,
                "prune": prune,
                "memory": settings.memory,
                "split": f"every {HELD_OUT_EVERY}th document held out (position {HELD_OUT_EVERY // 2})",
                "normalisation": "ccnet (lowercase, accents stripped, digits->0, punctuation map) "
                "+ punctuation split",
            },
            data=data.entries,
            metrics=metrics,
            extra=extra,
        )
        load_kenlm.cache_clear()
        registered = writer.commit(card)
    log(f"{name}: held-out perplexity {metrics['held_out_ppl']}, cut-offs {extra['cutoffs']}")
    return registered


def _mb(docs: list[corpora.Doc]) -> float:
    return sum(len(t) for _, t in docs) / 1e6


def _data_entries(docs: list[corpora.Doc]) -> list[dict[str, Any]]:
    """One checksum entry per source family (the part of the source name before the first `/`)."""
    families: dict[str, list[str]] = {}
    for source, text in docs:
        families.setdefault(source.split("/", 1)[0], []).append(text)
    return [texts_checksum(family, texts) for family, texts in families.items()]


def _bucket_extra(model, bucket: tuple[str, list[str]], percentiles: tuple[float, float]) -> dict[str, Any]:
    source, sample = bucket
    ppl = perplexities(model, sample)
    return {
        "percentiles": list(percentiles),
        "cutoffs": cutoffs_for(ppl, percentiles),
        "bucket_sample": {"source": source, "documents": len(sample), "median_ppl": float(np.nanmedian(ppl))},
    }


def _flag_threshold(model, held: list[corpora.Doc], metrics: dict[str, Any]) -> dict[str, Any]:
    """The perplexity below which a document is flagged: the threshold with the best balanced accuracy
    between held-out harmful documents and clean ones (gensim's Wikipedia pages and news)."""
    harmful = perplexities(model, [t for _, t in held])
    clean_docs = [t for _, t in corpora.gensim_wikipedia()] + [t for _, t in corpora.news_documents()]
    clean = perplexities(model, clean_docs)
    harmful, clean = harmful[np.isfinite(harmful)], clean[np.isfinite(clean)]
    candidates = np.unique(np.concatenate([harmful, clean]))
    balanced = [(np.mean(harmful < c) + np.mean(clean >= c)) / 2 for c in candidates]
    best = int(np.argmax(balanced))
    labels = np.r_[np.ones(len(harmful)), np.zeros(len(clean))]
    metrics["flag_auc_harmful_vs_clean"] = round(roc_auc(-np.concatenate([harmful, clean]), labels), 4)
    metrics["flag_balanced_accuracy"] = round(float(balanced[best]), 4)
    return {"flag_below": round(float(candidates[best]), 3)}


def calibrate_lm(
    name: str,
    sample: Path,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    max_docs: int = 20_000,
    home: Path | None = None,
) -> list[float]:
    """Re-compute a model's bucket cut-offs on a sample of one's own crawl (a shard file or a folder of
    shards in any readable format), and store them in its card. Returns the new cut-offs."""
    model = require_model(name, KIND, home)
    texts = [text for text in _read_texts(sample, max_docs)]
    if len(texts) < 10:
        raise ValueError(f"{sample} has {len(texts)} readable documents; calibration needs at least 10")
    ppl = perplexities(load_kenlm(str(model.path("model"))), texts)
    model.card.extra.update(
        {
            "percentiles": list(percentiles),
            "cutoffs": cutoffs_for(ppl, percentiles),
            "bucket_sample": {
                "source": str(sample),
                "documents": len(texts),
                "median_ppl": float(np.nanmedian(ppl)),
                "calibrated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        }
    )
    (model.directory / "card.json").write_text(model.card.to_json(), encoding="utf-8")
    return model.card.extra["cutoffs"]


def _read_texts(sample: Path, max_docs: int) -> Iterator[str]:
    paths = sorted(p for p in sample.rglob("*") if p.is_file()) if sample.is_dir() else [sample]
    count = 0
    for path in paths:
        fmt = infer_format(path)
        if fmt is None:
            continue
        for item in reader_for(fmt)(path, FieldMap()):
            if isinstance(item, RawDoc) and item.text.strip():
                yield item.text
                count += 1
                if count >= max_docs:
                    return

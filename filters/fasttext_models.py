"""fastText binary classifiers shared by the toxicity and quality filters: text preparation, a
deterministic split, training, scoring, and the better-profanity word list.

Why shared: both classifiers are DCLM-style bag-of-n-gram models over the same normalised text, scored a
whole Arrow batch per fastText call; only their training data differ.

Text preparation (`classifier_lines`) reuses the KenLM normalisation (CCNet: lowercase, accents off,
digits -> 0, punctuation map, punctuation split into tokens) and joins paragraphs with spaces, because
fastText reads one example per line. Documents are cut to `max_chars` first: classifiers need the gist,
not a whole book, and the cap bounds time per document.

fastText can produce NaN weights on tiny data sets, so training refuses fewer than `MIN_EXAMPLES` lines.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.kenlm_lm import normalize_for_lm
from filters.metrics import binary_report

MIN_EXAMPLES = 2000
POSITIVE = "__label__1"
NEGATIVE = "__label__0"

DEFAULT_HYPERPARAMS: dict[str, Any] = {
    "epoch": 5,
    "lr": 0.1,
    "wordNgrams": 2,
    "dim": 32,
    "minCount": 2,
    "bucket": 500_000,
    "loss": "softmax",
    "seed": 7,
}
"""Small on purpose (dim 32, 500k n-gram buckets, ~65 MB): DCLM's classifier is a bigram fastText too."""


def classifier_lines(texts: pa.Array | pa.ChunkedArray | Sequence[str | None], max_chars: int) -> list[str]:
    """Documents as single normalised lines (see the module docstring)."""
    array = texts if isinstance(texts, pa.Array | pa.ChunkedArray) else pa.array(texts, pa.large_string())
    array = pc.utf8_slice_codeunits(pc.fill_null(array, ""), 0, max_chars)
    return pc.replace_substring(normalize_for_lm(array), "\n", " ").to_pylist()


def held_out(group: str, test_percent: int = 10) -> bool:
    """Stable test-split membership by a hash of the example's group (its source document), so chunks of
    one document never straddle train and test."""
    digest = hashlib.blake2b(group.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % 100 < test_percent


Example = tuple[str, int, str]  # text, label (1 = positive class), group


def split(examples: list[Example], test_percent: int = 10) -> tuple[list[Example], list[Example]]:
    train = [e for e in examples if not held_out(e[2], test_percent)]
    test = [e for e in examples if held_out(e[2], test_percent)]
    return train, test


def train_classifier(
    examples: list[Example], path: Path, max_chars: int, hyperparams: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train a fastText classifier on (text, label, group) examples and save it to `path`."""
    params = {**DEFAULT_HYPERPARAMS, **(hyperparams or {})}
    lines = classifier_lines([text for text, _, _ in examples], max_chars)
    rows = [
        f"{POSITIVE if label else NEGATIVE} {line}"
        for line, (_, label, _) in zip(lines, examples, strict=True)
        if line
    ]
    if len(rows) < MIN_EXAMPLES:
        raise ValueError(f"{len(rows)} training examples; fastText needs at least {MIN_EXAMPLES} to train")
    random.Random(params["seed"]).shuffle(rows)  # fastText does not shuffle; label runs hurt SGD
    train_file = path.with_suffix(".train.txt")
    train_file.write_text("\n".join(rows) + "\n", encoding="utf-8")
    started = time.perf_counter()
    try:
        params["lr"], attempts = _train_isolated(train_file, path, params)
    finally:
        train_file.unlink()
    positives = sum(row.startswith(POSITIVE) for row in rows)
    return {
        "train_examples": len(rows),
        "train_positives": positives,
        "train_seconds": round(time.perf_counter() - started, 2),
        "train_attempts": attempts,
        "hyperparams": params,
    }


def _train_isolated(
    train_file: Path, path: Path, params: dict[str, Any], attempts: int = 3
) -> tuple[float, int]:
    """Train in a fresh spawned process, single-threaded, halving the learning rate after a NaN.

    Why: fastText's Hogwild threads make runs irreproducible and occasionally diverge to NaN, and after a
    NaN we saw later trainings in the same process fail too. One thread gives the same model for the same
    data and seed; a child process keeps any failure from poisoning the caller.
    """
    lr = float(params["lr"])
    context = multiprocessing.get_context("spawn")
    for attempt in range(1, attempts + 1):
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            if pool.submit(_train_file, str(train_file), str(path), {**params, "lr": lr}).result():
                return lr, attempt
        lr /= 2
    raise RuntimeError(
        f"fastText diverged (NaN) {attempts} times, down to lr {lr * 2:g}; check the training data"
    )


def _train_file(train_file: str, path: str, params: dict[str, Any]) -> bool:
    """Runs in the child: False when fastText reports NaN."""
    import fasttext

    try:
        model = fasttext.train_supervised(input=train_file, thread=1, verbose=0, **params)
    except RuntimeError as error:
        if "NaN" in str(error):
            return False
        raise
    model.save_model(path)
    return True


@lru_cache(maxsize=4)
def load_classifier(path: str):
    import fasttext

    return fasttext.load_model(path)


def positive_probability(model, lines: list[str]) -> np.ndarray:
    """P(label 1) per line, from one batched fastText call."""
    labels, probs = model.predict(lines, k=2)
    out = np.empty(len(lines), dtype=np.float64)
    for i, (names, values) in enumerate(zip(labels, probs, strict=True)):
        scores = dict(zip(names, values, strict=True))
        if POSITIVE in scores:
            out[i] = scores[POSITIVE]
        else:
            out[i] = 1.0 - scores.get(NEGATIVE, 0.5)
    return np.clip(out, 0.0, 1.0)


def score_texts(model, texts, max_chars: int) -> np.ndarray:
    return positive_probability(model, classifier_lines(texts, max_chars))


def evaluate(model, examples: list[Example], max_chars: int) -> dict[str, float]:
    """Held-out precision/recall/F1 at 0.5 and ROC-AUC."""
    scores = score_texts(model, [text for text, _, _ in examples], max_chars)
    return binary_report(scores, np.array([label for _, label, _ in examples]))


# --------------------------------------------------------------------------------------- word list


@lru_cache(maxsize=1)
def profanity_words() -> frozenset[str]:
    """better-profanity's English word list (MIT), single-word entries only (26 of 917 are phrases)."""
    text = (resources.files("better_profanity") / "profanity_wordlist.txt").read_text(encoding="utf-8")
    return frozenset(w.strip().lower() for w in text.splitlines() if w.strip() and " " not in w.strip())


def profanity_rate(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Fraction of each document's whitespace tokens (punctuation trimmed, lowercased) on the word list."""
    tokens = pc.utf8_split_whitespace(pc.utf8_lower(pc.fill_null(texts, "")))
    if isinstance(tokens, pa.ChunkedArray):
        tokens = tokens.combine_chunks()
    flat = pc.utf8_trim(pc.list_flatten(tokens), "\"'.,;:!?()[]{}<>*_~`#@")
    hits = pc.is_in(flat, pa.array(sorted(profanity_words()), flat.type)).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(tokens).to_numpy()
    counts = np.bincount(parents, minlength=len(tokens)).astype(np.float64)
    bad = np.bincount(parents, weights=hits.astype(np.float64), minlength=len(tokens))
    return np.divide(bad, counts, out=np.zeros(len(tokens)), where=counts > 0)

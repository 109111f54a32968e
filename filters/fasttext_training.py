"""Training and evaluating fastText binary classifiers (toxicity, quality): the recipes' side only.

Why shared: both classifiers are DCLM-style bag-of-n-gram models over the same normalised text
(`filters.fasttext_scoring.classifier_lines`, which the stages score with); only their training data
differ. Stages never import this module.

Training (`train_classifier`) runs single-threaded in a fresh child interpreter with fresh zeroed memory
(`_run_child` says why: fastText leaves most of its input matrix uninitialised), so the same data and seed
give the same model. It refuses fewer than `MIN_EXAMPLES` lines; every trained model is also checked
(`degenerate`: bounded weights, and on its own training examples finite, varied probabilities that rank
the classes), and a NaN or a failed check is retried with half the learning rate and the next seed, at
most `ATTEMPTS` times, then fails with one error naming every attempt. Optionally the classifier starts
from skip-gram word vectors trained on the same text plus unlabelled text (`skipgram=`), which gives
words seen rarely or never with a label a starting position near words used like them.

Examples are split by a hash of their source document (`split`, `held_out`), and `evaluate` reports
held-out precision/recall/F1/ROC-AUC for the model card.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from filters.fasttext_kernel import CompiledClassifier
from filters.fasttext_scoring import NEGATIVE, POSITIVE, classifier_lines, score_texts
from filters.metrics import binary_report, roc_auc

MIN_EXAMPLES = 2000

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

DEFAULT_SKIPGRAM: dict[str, Any] = {"epoch": 5, "lr": 0.05, "minCount": 2, "ws": 5, "neg": 5, "t": 1e-4}
"""Skip-gram word vectors to start a classifier from (`train_classifier(skipgram=...)`): fastText's
unsupervised defaults, without character n-grams (the classifier has none) and at the classifier's dim.
fastText's Python API fixes the skip-gram seed at 0; the corpus order follows the classifier's seed."""

ATTEMPTS = 3
SANITY_LINES = 5000
MIN_TRAIN_AUC = 0.75
MAX_WEIGHT = 1000.0  # sound weights here stay under ~10; uninitialised memory reads as 1e17 or NaN


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
    examples: list[Example],
    path: Path,
    max_chars: int,
    hyperparams: dict[str, Any] | None = None,
    skipgram: dict[str, Any] | None = None,
    unlabelled: Sequence[str] = (),
    min_examples: int = MIN_EXAMPLES,
) -> dict[str, Any]:
    """Train a fastText classifier on (text, label, group) examples and save it to `path`.

    Fewer than `min_examples` non-empty lines is a ValueError (the bundled recipes keep MIN_EXAMPLES;
    a user's own data is checked by document counts first and may be smaller).

    With `skipgram` (settings over `DEFAULT_SKIPGRAM`), word vectors are first trained without labels on
    the examples' distinct texts plus `unlabelled` texts, and the classifier starts from them
    (`pretrainedVectors`). Returns the facts a card records: sizes, seconds, attempts, final settings.
    """
    params = {**DEFAULT_HYPERPARAMS, **(hyperparams or {})}
    lines = classifier_lines([text for text, _, _ in examples], max_chars)
    rows = [
        f"{POSITIVE if label else NEGATIVE} {line}"
        for line, (_, label, _) in zip(lines, examples, strict=True)
        if line
    ]
    if len(rows) < min_examples:
        raise ValueError(f"{len(rows)} training examples; fastText needs at least {min_examples} to train")
    corpus: list[str] = []
    vectors = None
    if skipgram is not None:
        vectors = {**DEFAULT_SKIPGRAM, **skipgram}
        distinct = dict.fromkeys([*(text for text, _, _ in examples), *unlabelled])
        corpus = [line for line in classifier_lines(list(distinct), max_chars) if line]
    started = time.perf_counter()
    outcome = _train_with_retries(rows, corpus, path, params, vectors)
    facts: dict[str, Any] = {
        "train_examples": len(rows),
        "train_positives": sum(row.startswith(POSITIVE) for row in rows),
        "train_seconds": round(time.perf_counter() - started, 2),
        "train_cpu_seconds": outcome["cpu_seconds"],
        "train_attempts": outcome["attempts"],
        "hyperparams": outcome["params"],
    }
    if outcome["failures"]:
        facts["train_failures"] = outcome["failures"]
    if vectors is not None:
        facts["skipgram"] = {
            **outcome["skipgram"],
            "dim": params["dim"],
            "corpus_texts": len(corpus),
            "corpus_words": sum(line.count(" ") + 1 for line in corpus),
            "vocabulary": outcome["vocabulary"],
            "cpu_seconds": outcome["skipgram_cpu_seconds"],
        }
    return facts


def _shuffled(lines: list[str], seed: int) -> str:
    """One text per line in a seeded order: fastText does not shuffle, and label runs hurt SGD."""
    order = list(lines)
    random.Random(seed).shuffle(order)
    return "\n".join(order) + "\n"


def _train_with_retries(
    rows: list[str],
    corpus: list[str],
    path: Path,
    params: dict[str, Any],
    skipgram: dict[str, Any] | None,
    attempts: int = ATTEMPTS,
) -> dict[str, Any]:
    """Train in a child process (`_child_main`); after a failure, halve the learning rate of the part
    that failed and move the seed on (training order and fastText's own), at most `attempts` times."""
    params = dict(params)
    vectors = dict(skipgram) if skipgram is not None else None
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix=".fasttext-", dir=path.parent) as work:
        files = {name: str(Path(work) / name) for name in ("train.txt", "corpus.txt", "vectors.vec")}
        job: dict[str, Any] = {"files": files, "path": str(path), "result": str(Path(work) / "result.json")}
        if vectors is not None:
            distinct = len({token for line in corpus for token in line.split()})
            job["padding_rows"] = skipgram_padding(distinct, int(params["dim"]))
        for attempt in range(1, attempts + 1):
            seed = int(params["seed"])
            Path(files["train.txt"]).write_text(_shuffled(rows, seed), encoding="utf-8")
            if vectors is not None:
                Path(files["corpus.txt"]).write_text(_shuffled(corpus, seed), encoding="utf-8")
            result = _run_child({**job, "params": params, "skipgram": vectors})
            if result["ok"]:
                return {
                    **result,
                    "attempts": attempt,
                    "failures": failures,
                    "params": params,
                    "skipgram": vectors,
                }
            failures.append(f"attempt {attempt}: {result['failure']}")
            if result["stage"] == "skipgram" and vectors is not None:
                vectors["lr"] = float(vectors["lr"]) / 2
            else:
                params["lr"] = float(params["lr"]) / 2
            params["seed"] = seed + 1
    raise RuntimeError(
        f"fastText training failed {attempts} times ({'; '.join(failures)}); check the training data and "
        "the learning rates (hyperparams lr, skipgram lr)"
    )


def skipgram_padding(distinct_tokens: int, dim: int) -> int:
    """Unused rows to add to the skip-gram input matrix (as `bucket`) so that every word row is
    initialised and the matrix is mapped fresh (see `_run_child`): the 10% fastText initialises must
    cover all words, and the matrix must be larger than glibc's 32 MB ceiling for heap allocations."""
    return max(9 * distinct_tokens, (32 << 20) // (4 * dim) + 1)


def _run_child(job: dict[str, Any]) -> dict[str, Any]:
    """One training in a fresh interpreter that imports only this module, with large allocations mapped.

    Why: with one thread, fastText 0.9.2 initialises only the first 10% of the input matrix's rows and
    leaves the rest as whatever the allocator returns. Fresh pages from the kernel are zeros; memory
    the process freed earlier is garbage, which made training diverge to NaN (or to weights of 1e17) in
    processes that had handled large Arrow batches or had trained before, while the same file trained
    cleanly elsewhere. A new interpreter that does nothing else, with MALLOC_MMAP_THRESHOLD_ making every
    allocation of 64 KB or more that its small heap cannot serve a fresh mapping (and no MALLOC_PERTURB_
    filling memory with a pattern), gives the same zeros, so the same data and seed give the same model
    whichever program (CLI, tests, a notebook) asked for it.
    One thread: Hogwild threads make runs irreproducible."""
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_PERTURB_", "GLIBC_TUNABLES")}
    env["MALLOC_MMAP_THRESHOLD_"] = str(1 << 16)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [*sys.path, env.get("PYTHONPATH", "")] if p)
    code = "import sys; from filters.fasttext_training import _child_main; _child_main(sys.argv[1])"
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(job)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"fastText training process failed (exit {done.returncode}): {tail}")
    return json.loads(Path(job["result"]).read_text(encoding="utf-8"))


def _child_main(job_json: str) -> None:
    job = json.loads(job_json)
    result = _train_files(
        job["files"], job["path"], job["params"], job["skipgram"], job.get("padding_rows", 0)
    )
    Path(job["result"]).write_text(json.dumps(result), encoding="utf-8")


def _train_files(
    files: dict[str, str],
    path: str,
    params: dict[str, Any],
    skipgram: dict[str, Any] | None,
    padding_rows: int = 0,
) -> dict[str, Any]:
    """Runs in the child: skip-gram vectors (optional), then the classifier, each checked; a failed check
    returns {"ok": False, "stage", "failure"} instead of saving anything."""
    import fasttext

    started = time.process_time()
    out: dict[str, Any] = {"ok": True}
    if skipgram is not None:
        try:  # skip-gram reads no word n-grams: wordNgrams 2 only stops fastText dropping the padding rows
            model = fasttext.train_unsupervised(
                input=files["corpus.txt"],
                model="skipgram",
                dim=params["dim"],
                minn=0,
                maxn=0,
                wordNgrams=2,
                bucket=padding_rows,
                thread=1,
                verbose=0,
                **skipgram,
            )
        except RuntimeError as error:
            if "NaN" not in str(error):
                raise
            return {
                "ok": False,
                "stage": "skipgram",
                "failure": f"skip-gram loss went NaN at lr {skipgram['lr']:g}",
            }
        words = model.get_words()
        matrix = model.get_input_matrix()[: len(words)]
        largest = float(np.abs(matrix).max()) if np.isfinite(matrix).all() else float("inf")
        if not 0 < largest <= MAX_WEIGHT:
            failure = f"skip-gram vectors diverged (largest |value| {largest:.3g}) at lr {skipgram['lr']:g}"
            return {"ok": False, "stage": "skipgram", "failure": failure}
        _write_vectors(words, matrix, files["vectors.vec"])
        out["vocabulary"] = len(words)
        out["skipgram_cpu_seconds"] = round(time.process_time() - started, 2)
        params = {**params, "pretrainedVectors": files["vectors.vec"]}
        del model, matrix
    try:
        model = fasttext.train_supervised(input=files["train.txt"], thread=1, verbose=0, **params)
    except RuntimeError as error:
        if "NaN" not in str(error):
            raise
        problem = "classifier loss went NaN"
    else:
        problem = degenerate(model, files["train.txt"])
    if problem:
        return {"ok": False, "stage": "classifier", "failure": f"{problem} at lr {params['lr']:g}"}
    model.save_model(path)
    out["cpu_seconds"] = round(time.process_time() - started, 2)
    return out


def _write_vectors(words: list[str], matrix: np.ndarray, path: str) -> None:
    """The .vec text format fastText's pretrainedVectors reads (5 significant digits are plenty)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"{len(words)} {matrix.shape[1]}\n")
        for word, row in zip(words, matrix, strict=True):
            handle.write(word + " " + " ".join(f"{x:.5g}" for x in row) + "\n")


def degenerate(model, train_file: str, lines: int = SANITY_LINES) -> str | None:
    """Why a trained classifier is unusable, or None: weights that are not finite, or on its own first
    `lines` training examples (labels known, no evaluation data involved) probabilities that are not
    finite, all equal, or rank the classes worse than MIN_TRAIN_AUC. A sound model fits its training
    set almost perfectly (ROC-AUC ~0.99 here); this only catches a diverged or collapsed one."""
    for name, weights in (("output", model.get_output_matrix()), ("input", model.get_input_matrix())):
        largest = float(np.abs(weights).max()) if np.isfinite(weights).all() else float("inf")
        if largest > MAX_WEIGHT:
            return f"{name} weights diverged (largest |value| {largest:.3g})"
    with open(train_file, encoding="utf-8") as handle:
        head = [row.rstrip("\n") for row, _ in zip(handle, range(lines), strict=False)]
    labels = np.array([row.startswith(POSITIVE) for row in head])
    lines = pa.array([row.split(" ", 1)[1] for row in head], pa.large_string())
    p = CompiledClassifier.of(model, POSITIVE).probabilities(lines)
    if not np.isfinite(p).all():
        return "probabilities not finite"
    if np.ptp(p) < 1e-3:
        return f"every training example gets probability {p[0]:.3f}"
    auc = roc_auc(p, labels)
    if auc < MIN_TRAIN_AUC:
        return f"training-set ROC-AUC {auc:.2f} < {MIN_TRAIN_AUC}"
    return None


def evaluate(model, examples: list[Example], max_chars: int) -> dict[str, float]:
    """Held-out precision/recall/F1 at 0.5 and ROC-AUC."""
    scores = score_texts(model, [text for text, _, _ in examples], max_chars)
    return binary_report(scores, np.array([label for _, label, _ in examples]))

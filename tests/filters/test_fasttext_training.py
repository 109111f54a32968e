"""fastText training is reproducible and fails loudly: a NaN or a diverged or collapsed model is retried at
half the learning rate with the next seed, and repeated failure is one error naming every attempt.

The failing settings are real: learning rates at which fastText diverges on a small synthetic task (two
classes told apart by a few marker words among common ones), not mocks.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from filters.fasttext_scoring import load_classifier
from filters.fasttext_training import Example, evaluate, skipgram_padding, split, train_classifier

TINY = {"dim": 8, "bucket": 10_000, "epoch": 2}


def word(prefix: str, i: int) -> str:
    return prefix + chr(97 + i // 26) + chr(97 + i % 26)  # letters only: normalisation maps digits to 0


def synthetic(n: int = 2400, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        label = i % 2
        words = [word("good" if label else "bad", rng.randrange(40)) for _ in range(3)]
        words += [word("w", rng.randrange(300)) for _ in range(12)]
        rng.shuffle(words)
        examples.append((" ".join(words), label, f"doc{i}"))
    return examples


def train(tmp_path: Path, hyperparams: dict, skipgram: dict | None = None, name: str = "m.bin"):
    path = tmp_path / name
    facts = train_classifier(synthetic(), path, 1000, {**TINY, **hyperparams}, skipgram=skipgram)
    return facts, path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_classifier_nan_is_retried_at_half_the_learning_rate_with_the_next_seed(tmp_path: Path) -> None:
    facts, path = train(tmp_path, {"lr": 32})
    assert facts["train_attempts"] == 3
    first, second = facts["train_failures"]
    assert "NaN at lr 32" in first and "diverged" in second and "at lr 16" in second
    assert facts["hyperparams"]["lr"] == 8 and facts["hyperparams"]["seed"] == 9  # the card's settings
    assert path.is_file()


def test_skipgram_nan_is_retried_on_the_skipgram_learning_rate(tmp_path: Path) -> None:
    facts, _ = train(tmp_path, {}, skipgram={"epoch": 2, "lr": 2.0})
    assert facts["train_attempts"] == 3
    assert all("skip-gram loss went NaN" in failure for failure in facts["train_failures"])
    assert facts["skipgram"]["lr"] == 0.5 and facts["hyperparams"]["lr"] == 0.1  # only the part that failed


def test_repeated_failure_is_one_error_naming_every_attempt(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"failed 3 times \(attempt 1: classifier loss went NaN at lr 128"):
        train(tmp_path, {"lr": 128})
    assert not (tmp_path / "m.bin").exists()
    with pytest.raises(RuntimeError, match="every training example gets probability 0.500"):
        train(tmp_path, {"lr": 1e-7})  # a model that learnt nothing is refused too


def test_same_data_and_seed_give_the_same_model_whatever_the_callers_allocator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fastText leaves 90% of its input matrix uninitialised with one thread; the training child gets
    fresh zeroed memory, so memory the caller filled with a pattern cannot leak into the model."""
    _, first = train(tmp_path, {"lr": 1}, skipgram={"epoch": 2}, name="first.bin")
    monkeypatch.setenv("MALLOC_PERTURB_", "165")
    _, second = train(tmp_path, {"lr": 1}, skipgram={"epoch": 2}, name="second.bin")
    assert digest(first) == digest(second)


def test_skipgram_pretrained_classifier_beats_chance_on_held_out_examples(tmp_path: Path) -> None:
    examples = synthetic(4000, seed=1)
    fit, held = split(examples)
    facts = train_classifier(fit, tmp_path / "m.bin", 1000, TINY, skipgram={"epoch": 2})
    assert facts["skipgram"]["vocabulary"] > 300 and facts["train_attempts"] == 1
    report = evaluate(load_classifier(str(tmp_path / "m.bin")), held, 1000)
    load_classifier.cache_clear()
    assert report["examples"] > 300 and report["roc_auc"] > 0.9


def test_skipgram_padding_initialises_every_word_and_maps_fresh_memory() -> None:
    rows = skipgram_padding(50_000, 32)
    assert rows >= 9 * 50_000  # fastText initialises the first 10% of rows: words + padding
    assert (rows + 50_000) * 32 * 4 > 32 << 20  # above glibc's largest heap allocation
    assert skipgram_padding(10, 32) * 32 * 4 > 32 << 20

"""One typed function per ``curate`` command of the trainer, for the CLI root to wire (``api/main.py``).

Every argument is a plain typed value a typer option can carry (repeatable ``NAME=VALUE`` options
arrive as ``list[str]``). User errors raise ``curate.errors.ConfigError`` with one line naming the
option and the fix, before any work starts; the CLI prints it and exits 2. Each function returns the
JSON-able dict it also wrote to disk (``OUT/result.json``), for ``--json`` output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.choices import MetadataField, Optimizer, Precision, Schedule, Size, TrainRecipe
from trainer.proxy import compare_runs, eval_proxy, parse_target_sets, parse_weights, train_proxy
from trainer.train import recipe_optimizer


def train_command(
    mixture: Path,
    out: Path,
    size: Size = "tiny",
    precision: Precision = "nvfp4",
    steps: int | None = None,
    tokens: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
    seq_len: int = 128,
    lr: float | None = None,
    schedule: Schedule = "cosine",
    optimizer: Optimizer | None = None,
    recipe: TrainRecipe = "standard",
    metadata_conditioning: MetadataField | None = None,
    cooldown: float = 0.1,
    vocab_size: int = 8192,
    tokenizer: Path | None = None,
    checkpoint_every: int = 100,
    high_precision_last: float = 2,
    weight: list[str] | None = None,
    device: str = "auto",
    threads: int | None = None,
    compile: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """`curate train --mixture MIX --out RUN`: train a proxy LM on a mixture, then score it.

    MIX is a mixture folder (its token shards when written, else its Parquet parts), a token-shard folder,
    or Parquet with `text` and `domain`. A mixture of `curate mix` is scored on its evaluation suite
    (MIX/eval/: the same held-out documents for every mixture of its corpora, plus its target sets; the
    suite's hash goes into result.json) and trains on all its documents; anything else is scored on a
    held-out 5% of its own documents (eval_suite null). Give --steps or --tokens (exactly one).
    Rerunning the same command resumes from RUN's last checkpoint. --weight DOMAIN=W (repeatable)
    weights the score; default equal weights. --high-precision-last N keeps the last N blocks (or a
    fraction < 1) in bf16 under fp8 and nvfp4. --recipe osp trains the outlier-safe model (Muon,
    single-scale RMSNorm, a learnable embedding projection; --optimizer defaults to the recipe's).
    --metadata-conditioning url|site prepends each training document's URL or site ("URL: VALUE" and a
    blank line, in tokens, no loss on them) for the first (1 - --cooldown) of the steps; documents without
    it, and evaluation, stay plain. The Parquet needs a `url` / `site` column (kept in the token shards).
    Writes RUN/metrics.jsonl, RUN/checkpoint/, RUN/result.json; returns result.json's content plus a
    "train" summary.
    """
    weights = parse_weights(weight or []) or None
    return train_proxy(
        mixture, out, size, precision, steps, seed, tokens=tokens, batch_size=batch_size, seq_len=seq_len,
        vocab_size=vocab_size, tokenizer=tokenizer, weights=weights, lr=lr, schedule=schedule,
        optimizer=recipe_optimizer(recipe, optimizer), recipe=recipe,
        metadata_conditioning=metadata_conditioning, cooldown=cooldown, checkpoint_every=checkpoint_every,
        high_precision_last=high_precision_last,
        device=device, threads=threads, compile=compile, progress=progress,
    )  # fmt: skip


def eval_command(
    run: Path,
    token_dir: Path | None = None,
    sets: list[str] | None = None,
    weight: list[str] | None = None,
    max_eval_tokens_per_domain: int | None = 65_536,
    device: str = "auto",
) -> dict[str, Any]:
    """`curate eval RUN [--token-dir DIR] [--set NAME=FILE ...] [--weight NAME=W ...]`: re-score a run.

    Without --token-dir the run's evaluation suite, or else its own held-out documents, are evaluated;
    with it, every document of DIR (tokenized with the run's tokenizer). --set adds a target set: a
    JSONL/Parquet/WARC file of texts, scored as domain NAME. Rewrites RUN/result.json and returns it.
    """
    return eval_proxy(
        run, token_dir, parse_weights(weight or []) or None, parse_target_sets(sets or []) or None,
        max_eval_tokens_per_domain, device,
    )  # fmt: skip


def score_command(mixture: Path, out: Path, size: Size = "tiny", precision: Precision = "nvfp4",
                  tokens: int = 2_000_000, seed: int = 0, weight: list[str] | None = None,
                  threads: int | None = None) -> dict[str, Any]:  # fmt: skip
    """`curate score MIX --out RUN`: train + eval in one, with the defaults a mixture search wants.

    The score (weighted mean bits per byte of held-out documents, lower is better) is the "score" key.
    """
    return train_command(
        mixture, out, size, precision, tokens=tokens, seed=seed, weight=weight, threads=threads
    )


def compare_command(runs: list[Path], allow_different_suites: bool = False) -> dict[str, Any]:
    """`curate compare RUN RUN ...`: the runs' scores, best first; refused unless every run was scored on
    the same evaluation suite (same hash in result.json), or shown with a warning with
    --allow-different-suites."""
    return compare_runs(runs, allow_different_suites)

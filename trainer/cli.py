"""`curate train`, `curate eval` and `curate score`: typer wrappers over
trainer.commands, which holds the logic and the docs of every option."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from trainer.choices import MetadataField, Optimizer, Precision, Schedule, Size, TrainRecipe

Repeat = Annotated[list[str] | None, typer.Option(help="NAME=VALUE, repeatable")]


def _run(function: Callable[..., dict[str, Any]], **kwargs: Any) -> None:
    result = function(**kwargs)
    typer.echo(json.dumps(result, indent=2, default=str))


def train(
    mixture: Annotated[Path, typer.Option(help="mixture folder, token shards, or Parquet with text+domain")],
    out: Annotated[Path, typer.Option(help="run folder (re-running resumes from its checkpoint)")],
    size: Annotated[Size, typer.Option(help="tiny (~1M), small (~10M), base (~100M) parameters")] = "tiny",
    precision: Annotated[Precision, typer.Option(help="number format of the matmuls")] = "nvfp4",
    steps: Annotated[int | None, typer.Option(min=1)] = None,
    tokens: Annotated[int | None, typer.Option(min=1, help="token budget (instead of --steps)")] = None,
    seed: int = 0,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    seq_len: Annotated[int, typer.Option(min=8)] = 128,
    lr: float | None = None,
    schedule: Annotated[Schedule, typer.Option(help="learning-rate schedule")] = "cosine",
    optimizer: Annotated[
        Optimizer | None, typer.Option(help="default: the recipe's (adamw; osp: muon)")
    ] = None,
    recipe: Annotated[
        TrainRecipe, typer.Option(help="osp: Muon, single-scale RMSNorm, embedding projection (4-bit-safe)")
    ] = "standard",
    metadata_conditioning: Annotated[
        MetadataField | None, typer.Option(help="prepend each document's url or site (MeCo), loss-free")
    ] = None,
    cooldown: Annotated[
        float, typer.Option(min=0, max=0.99, help="with --metadata-conditioning: last share of tokens plain")
    ] = 0.1,
    vocab_size: Annotated[int, typer.Option(min=256)] = 8192,
    tokenizer: Annotated[Path | None, typer.Option(help="an existing tokenizer.json")] = None,
    checkpoint_every: Annotated[int, typer.Option(min=1)] = 100,
    high_precision_last: Annotated[float, typer.Option(help="last N blocks (or fraction) kept in bf16")] = 2,
    weight: Repeat = None,
    device: str = "auto",
    threads: Annotated[int | None, typer.Option(min=1)] = None,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model")] = False,
) -> None:
    """Train a proxy LM on a mixture in the chosen precision, then score it on the mixture's evaluation
    suite (MIX/eval/, its hash in RUN/result.json; token shards or Parquet: a held-out 5% of their own).
    Evaluation is always on plain documents, with or without --metadata-conditioning."""
    from trainer.commands import train_command

    _run(train_command, mixture=mixture, out=out, size=size, precision=precision, steps=steps, tokens=tokens,
         seed=seed, batch_size=batch_size, seq_len=seq_len, lr=lr, schedule=schedule, optimizer=optimizer,
         recipe=recipe, metadata_conditioning=metadata_conditioning, cooldown=cooldown,
         vocab_size=vocab_size, tokenizer=tokenizer, checkpoint_every=checkpoint_every,
         high_precision_last=high_precision_last, weight=weight, device=device, threads=threads,
         compile=compile)  # fmt: skip


def evaluate(
    run: Annotated[Path, typer.Argument(help="a run folder of `curate train`")],
    token_dir: Annotated[Path | None, typer.Option(help="score these token shards instead")] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help="NAME=FILE target set, repeatable")] = None,
    weight: Repeat = None,
    device: str = "auto",
) -> None:
    """Per-domain bits-per-byte on the run's evaluation suite or held-out documents (and target sets);
    rewrites RUN/result.json."""
    from trainer.commands import eval_command

    _run(eval_command, run=run, token_dir=token_dir, sets=sets, weight=weight, device=device)


def score(
    mixture: Annotated[Path, typer.Argument(help="a mixture folder of `curate mix`")],
    out: Annotated[Path, typer.Option(help="run folder")] = Path(".cache/score"),
    size: Annotated[Size, typer.Option(help="tiny (~1M), small (~10M), base (~100M) parameters")] = "tiny",
    precision: Annotated[Precision, typer.Option(help="number format of the matmuls")] = "nvfp4",
    tokens: Annotated[int, typer.Option(min=1)] = 2_000_000,
    seed: int = 0,
    weight: Repeat = None,
    threads: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Train + evaluate in one: the mixture's proxy score (weighted mean bits per byte on its evaluation
    suite, whose hash result.json records; compare runs with `curate compare`)."""
    from trainer.commands import score_command

    _run(score_command, mixture=mixture, out=out, size=size, precision=precision, tokens=tokens, seed=seed,
         weight=weight, threads=threads)  # fmt: skip


def compare(
    runs: Annotated[list[Path], typer.Argument(help="run folders of `curate train` / `curate score`")],
    allow_different_suites: Annotated[
        bool, typer.Option("--allow-different-suites", help="show scores on different suites, with a warning")
    ] = False,
) -> None:
    """Rank runs by score; refused when they were scored on different evaluation suites."""
    from trainer.commands import compare_command

    record = compare_command(runs, allow_different_suites)
    if record.get("warning"):
        typer.secho(f"WARNING: {record['warning']}", err=True, fg="red", bold=True)
    typer.echo(json.dumps(record, indent=2, default=str))

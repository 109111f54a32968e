"""Entry points for the CLI: train a proxy on a mixture and score it, or (re-)evaluate a finished run.

``train_proxy`` accepts a token-shard folder, a mixture folder written by ``mixers`` (its ``tokens/``
shards are used as they are when present, else its Parquet parts), or any Parquet file or folder with
``text`` and ``domain`` columns. Parquet is tokenized once into ``OUT/tokens`` with the mixture's own
tokenizer, a given one, or a BPE trained on a sample of it (cached by the sample's hash), so a rerun
resumes training instead of re-tokenizing. Both functions write ``OUT/result.json`` and return its content.

A mixture with an evaluation suite (``MIX/eval/``, see ``mixers.suite``) trains on every one of its
documents and is scored on the suite: the same documents for every mixture of the same corpora, none of
them (nor a near-duplicate) in any of their training sets. ``result.json`` records the suite's hash, and
:func:`compare_runs` refuses to rank runs scored on different suites. Without a suite (token shards, plain
Parquet) a per-mixture held-out split is used and ``eval_suite`` is null: such scores rank nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from curate.checksums import file_sha256
from curate.errors import ConfigError
from trainer.evaluate import evaluate_domains, mixture_score
from trainer.model import ModelConfig, TransformerLM
from trainer.precision import PrecisionConfig, Recipe
from trainer.token_shards import TokenShards, is_token_dir, write_parquet_token_shards, write_token_shards
from trainer.tokenizer import encode_documents, load_tokenizer, train_tokenizer
from trainer.train import (
    CHECKPOINT,
    TrainConfig,
    evaluate_held_out,
    load_checkpoint,
    parse_train_config,
    resolve_device,
    train_run,
)

SCORE = "result.json"
TOKENIZER_SAMPLE_DOCS = 20_000
SUITE_RUN_FILE = "eval_suite.json"  # RUN/: which suite the run is scored on, and its token shards
SUITE_TOKENS = "eval_suite"  # RUN/eval_suite/: the suite tokenized with the run's tokenizer
SUITE_DOCS = "documents.parquet"  # MIX/eval/documents.parquet (kind, domain, id, source, text)


MIX_KIND = "curate-mixture"  # manifest.json "kind" of a folder written by the mixture writer (mixers/)


@dataclass(frozen=True)
class Source:
    """What ``train_proxy`` was pointed at: ready token shards, or Parquet files still to tokenize."""

    token_dir: Path | None
    files: list[Path]
    tokenizer: Path | None = None  # the mixture's own tokenizer, when its manifest names one that exists
    suite: dict[str, Any] | None = None  # the mixture's evaluation suite: {"hash", "path"} (absolute)


def resolve_source(path: Path) -> Source:
    """A token-shard folder; a mixture folder (its ``tokens/`` shards when written, else its parts); or
    any Parquet file or folder with ``text`` and ``domain`` columns."""
    if is_token_dir(path):
        return Source(path, [])
    manifest = _mixture_manifest(path)
    if manifest is None:
        return Source(None, mixture_files(path))
    suite = _suite_of(path, manifest)
    shards = manifest.get("token_shards") or {}
    if shards.get("path") and is_token_dir(path / shards["path"]):
        return Source(path / shards["path"], [], suite=suite)
    named = (manifest.get("tokenizer") or {}).get("path")
    existing = [p for p in (Path(named), path / named) if p.is_file()] if named else []
    files = _checked([path / entry["path"] for entry in manifest.get("files", [])], path)
    return Source(None, files, existing[0] if existing else None, suite)


def _suite_of(path: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    entry = manifest.get("eval_suite")
    if not entry:
        return None
    folder = (path / entry["path"]).resolve()
    if not (folder / SUITE_DOCS).is_file():
        raise ConfigError(
            f"{path}: its manifest names the evaluation suite {folder} but it is gone; rebuild it"
        )
    return {"hash": entry["hash"], "path": str(folder)}


def _mixture_manifest(path: Path) -> dict[str, Any] | None:
    manifest = path / "manifest.json"
    if not manifest.is_file():
        return None
    content = json.loads(manifest.read_text(encoding="utf-8"))
    return content if isinstance(content, dict) and content.get("kind") == MIX_KIND else None


def mixture_files(path: Path) -> list[Path]:
    """The Parquet files of a mixture: one file, or every ``*.parquet`` below a folder (except the
    ``documents.parquet`` of token shards), sorted."""
    if path.is_file():
        return _checked([path], path)
    files = sorted(f for f in path.rglob("*.parquet") if not is_token_dir(f.parent))
    return _checked(files, path)


def _checked(files: list[Path], where: Path) -> list[Path]:
    """Fail in one line unless every file exists and has the two columns the trainer needs."""
    if not files:
        raise ConfigError(f"{where}: neither token shards (tokens.json) nor Parquet mixture files")
    for file in files:
        if not file.is_file():
            raise ConfigError(f"{file}: listed by the mixture but missing; rebuild the mixture")
        names = set(pq.read_schema(file).names)
        if not {"text", "domain"} <= names:
            raise ConfigError(
                f"{file}: a mixture file needs `text` and `domain` columns (has {sorted(names)})"
            )
    return files


def mixture_documents(files: list[Path], batch_rows: int = 4096) -> Iterator[tuple[str, str]]:
    """(text, domain) of every row, streamed in Parquet batches."""
    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=batch_rows, columns=["text", "domain"]):
            yield from zip(batch.column("text").to_pylist(), batch.column("domain").to_pylist(), strict=True)


def tokenizer_sample(files: list[Path], max_docs: int = TOKENIZER_SAMPLE_DOCS) -> Iterator[str]:
    """Every k-th text, k chosen so the sample spans the whole mixture rather than its first file."""
    rows = sum(pq.ParquetFile(file).metadata.num_rows for file in files)
    stride = max(1, rows // max_docs)
    for index, (text, _domain) in enumerate(mixture_documents(files)):
        if index % stride == 0 and text:
            yield text


def tokenize_mixture(
    files: list[Path],
    folder: Path,
    vocab_size: int,
    tokenizer: str | Path | None,
    cache_dir: Path | None = None,
) -> Path:
    """Token shards of a Parquet mixture in ``folder`` (reused when already complete)."""
    if is_token_dir(folder):
        return folder
    tokenizer_path = (
        Path(tokenizer) if tokenizer else train_tokenizer(tokenizer_sample(files), vocab_size, cache_dir)
    )
    write_parquet_token_shards(folder, files, load_tokenizer(tokenizer_path), tokenizer_path)
    return folder


def steps_for(steps: int | None, tokens: int | None, batch_size: int, seq_len: int) -> int:
    """Exactly one of steps or a token budget; the budget is rounded up to whole steps."""
    if (steps is None) == (tokens is None):
        raise ConfigError("give exactly one of --steps or --tokens")
    if tokens is not None:
        if tokens <= 0:
            raise ConfigError(f"--tokens must be positive, got {tokens}")
        return math.ceil(tokens / (batch_size * seq_len))
    return int(steps)  # type: ignore[arg-type]


def train_proxy(
    mix_or_token_dir: Path,
    out_dir: Path,
    preset: str = "tiny",
    precision: str = "nvfp4",
    steps: int | None = None,
    seed: int = 0,
    *,
    tokens: int | None = None,
    batch_size: int = 16,
    seq_len: int = 128,
    vocab_size: int = 8192,
    tokenizer: Path | None = None,
    tokenizer_cache: Path | None = None,
    weights: dict[str, float] | None = None,
    max_eval_tokens_per_domain: int | None = 65_536,
    **train_options: Any,
) -> dict[str, Any]:
    """Train a proxy LM on a mixture (Parquet or token shards) and score it; returns result.json's content.

    ``train_options`` are further :class:`trainer.train.TrainConfig` fields (lr, schedule, optimizer,
    checkpoint_every, stop_after, device, compile, model={...}, high_precision_last=..., ...). A rerun
    with the same arguments resumes from the last checkpoint. Raises ConfigError for user errors.
    """
    source, out_dir = Path(mix_or_token_dir), Path(out_dir)
    if not source.exists():
        raise ConfigError(f"{source}: no such mixture or token-shard folder")
    resolved = resolve_source(source)
    if resolved.suite is not None:
        train_options["eval_fraction"] = 0.0  # every mixture document is training data; the suite scores
    from_mixture = resolved.token_dir is None
    if tokenizer is not None and not Path(tokenizer).exists():
        raise ConfigError(f"--tokenizer {tokenizer}: no such file; give a tokenizer.json or leave it out")
    precision_fields = {
        k: train_options.pop(k) for k in list(train_options) if k in PrecisionConfig.model_fields
    }
    cfg = parse_train_config(  # validated before any tokenizing, so a typo costs a second
        token_dir=out_dir / "tokens" if from_mixture else resolved.token_dir,
        out_dir=out_dir,
        preset=preset,
        precision={"name": precision, **precision_fields},
        steps=steps_for(steps, tokens, batch_size, seq_len),
        seed=seed,
        batch_size=batch_size,
        seq_len=seq_len,
        **train_options,
    )
    if from_mixture:
        tokenize_mixture(
            resolved.files, cfg.token_dir, vocab_size, tokenizer or resolved.tokenizer, tokenizer_cache
        )
    if resolved.suite is None and not len(
        TokenShards(cfg.token_dir).split(cfg.eval_fraction, seed=cfg.split_seed).eval
    ):
        raise ConfigError(
            f"{source}: no held-out documents to score (needs >= 2 documents in some domain "
            "and eval_fraction > 0)"
        )
    run, summary = train_run(cfg)
    result = {"train": summary}
    if resolved.suite is not None:
        suite_dir = tokenize_suite(resolved.suite, out_dir, run.shards.tokenizer_path)
    scoring = {"weights": weights, "max_eval_tokens_per_domain": max_eval_tokens_per_domain}
    if not summary["finished"]:
        return result
    trained_now = summary["final_loss"] is not None
    stored = None if trained_now else stored_score(out_dir, run.step, resolved.suite, scoring)
    if stored is not None:
        return result | stored
    if resolved.suite is not None:
        evaluate = _evaluator(run.model, run.recipe, cfg, None)
        per_domain, targets = evaluate_suite(evaluate, suite_dir)
        return result | write_score(
            out_dir, cfg, run.step, per_domain, targets, weights, resolved.suite, scoring
        )
    per_domain = evaluate_held_out(run, cfg, max_eval_tokens_per_domain)
    return result | write_score(out_dir, cfg, run.step, per_domain, {}, weights, None, scoring)


def stored_score(
    out_dir: Path, step: int, suite: dict[str, Any] | None, scoring: dict[str, Any]
) -> dict[str, Any] | None:
    """result.json when it already scores this checkpoint (nothing trained in this call) on this suite
    with these settings: a rerun of a finished run (the demo's second run) then costs no evaluation.
    A score written by `curate eval` (other shards, target sets) has no ``scored_with``: never reused."""
    path = out_dir / SCORE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    same = (record.get("step"), record.get("eval_suite"), record.get("scored_with")) == (step, suite, scoring)
    return record if same else None


def tokenize_suite(suite: dict[str, Any], run_dir: Path, tokenizer_path: Path) -> Path:
    """RUN/eval_suite/: the suite's held-out documents (domain = their domain) and target sets (domain =
    the set's name), tokenized with the run's tokenizer; RUN/eval_suite.json names the suite."""
    folder = run_dir / SUITE_TOKENS
    marker = run_dir / SUITE_RUN_FILE
    if is_token_dir(folder) and marker.is_file() and json.loads(marker.read_text()) == suite:
        return folder
    table = pq.read_table(Path(suite["path"]) / SUITE_DOCS, columns=["kind", "domain", "text"])
    tok = load_tokenizer(tokenizer_path)
    texts = [text or "" for text in table.column("text").to_pylist()]
    names = [
        f"{kind}:{domain}"
        for kind, domain in zip(
            table.column("kind").to_pylist(), table.column("domain").to_pylist(), strict=True
        )
    ]
    encoded = (
        (ids, name, n_bytes) for (ids, n_bytes), name in zip(encode_documents(tok, texts), names, strict=True)
    )
    write_token_shards(folder, encoded, tok.get_vocab_size(with_added_tokens=True), tokenizer_path)
    marker.write_text(json.dumps(suite) + "\n")
    return folder


def evaluate_suite(evaluate: Any, suite_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(held-out domains, target sets) of a tokenized suite, every document scored whole."""
    shards = TokenShards(suite_dir)
    figures = evaluate(shards, np.arange(len(shards)))
    split: dict[str, dict[str, Any]] = {"held_out": {}, "target": {}}
    for name, values in figures.items():
        kind, _, domain = name.partition(":")
        split[kind][domain] = values
    return split["held_out"], split["target"]


def run_suite(run_dir: Path) -> dict[str, Any] | None:
    """The evaluation suite a run is scored on ({"hash", "path"}), or None (a per-mixture split)."""
    marker = run_dir / SUITE_RUN_FILE
    return json.loads(marker.read_text()) if marker.is_file() else None


def write_score(
    out_dir: Path,
    cfg: TrainConfig,
    step: int,
    per_domain: dict[str, dict[str, float]],
    targets: dict[str, dict[str, float]],
    weights: dict[str, float] | None,
    suite: dict[str, Any] | None = None,
    scored_with: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """result.json: the weighted score plus every figure it was computed from, and the evaluation
    suite it was scored on (null: a held-out split of this mixture's own documents, comparable to no
    other mixture's score)."""
    clash = sorted(set(per_domain) & set(targets))
    if clash:
        raise ConfigError(f"target set name(s) {clash} equal domain names; rename the target sets")
    score = mixture_score({**per_domain, **targets}, weights)
    record = {
        **score,
        "domains": per_domain,
        "targets": targets,
        "step": step,
        "preset": cfg.preset,
        "precision": cfg.precision.name,
        "tokens_trained": step * cfg.batch_size * cfg.seq_len,
        "token_dir": str(cfg.token_dir),
        "eval_suite": suite,
        "scored_with": scored_with,
    }
    tmp = out_dir / (SCORE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(out_dir / SCORE)
    return record


def run_dir_of(path: Path) -> Path:
    """A run folder from the folder itself, its checkpoint folder or its state.pt."""
    path = Path(path)
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / "config.json").is_file() and (candidate / CHECKPOINT).is_file():
            return candidate
    raise ConfigError(f"{path}: not a proxy run folder (needs config.json and {CHECKPOINT}); train one first")


def load_run(run_dir: Path, device: str = "auto") -> tuple[TrainConfig, TransformerLM, Recipe, int]:
    """(config, model with the checkpoint's weights, recipe with its SR state, step) of a run folder."""
    cfg = TrainConfig.model_validate_json((run_dir / "config.json").read_text())
    model_cfg = ModelConfig.model_validate_json((run_dir / "model.json").read_text())
    target = resolve_device(device)
    recipe = Recipe(cfg.precision, target, cfg.seed)
    model = recipe.prepare(TransformerLM(model_cfg)).to(target)
    state = load_checkpoint(run_dir / CHECKPOINT)
    model.load_state_dict(state["model"])
    recipe.load_state_dict(state["recipe"])
    return cfg, model, recipe, int(state["step"])


def eval_proxy(
    checkpoint_dir: Path,
    token_dir: Path | None = None,
    weights: dict[str, float] | None = None,
    target_sets: dict[str, Path] | None = None,
    max_eval_tokens_per_domain: int | None = 65_536,
    device: str = "auto",
) -> dict[str, Any]:
    """Per-domain bits per byte of a trained proxy and the weighted score; writes RUN/result.json.

    On the run's own token shards only the held-out documents are evaluated (the split is recomputed
    from the run's config, so it is the one training excluded); on any other token shards every document
    is. ``target_sets`` maps a name to a JSONL/Parquet/WARC file of texts (field ``text``), tokenized with
    the run's tokenizer into RUN/targets/NAME and evaluated whole.
    """
    run_dir = run_dir_of(checkpoint_dir)
    if token_dir is not None and not is_token_dir(Path(token_dir)):
        raise ConfigError(f"{token_dir}: not a token-shard folder (no tokens.json)")
    cfg, model, recipe, step = load_run(run_dir, device)
    suite = run_suite(run_dir) if token_dir is None else None
    targets: dict[str, dict[str, float]] = {}
    if suite is not None:
        per_domain, targets = evaluate_suite(_evaluator(model, recipe, cfg, None), run_dir / SUITE_TOKENS)
    else:
        shards = TokenShards(Path(token_dir) if token_dir else cfg.token_dir)
        _check_same_tokenizer(run_dir, shards)
        same_data = shards.folder.resolve() == Path(cfg.token_dir).resolve()
        docs = (
            shards.split(cfg.eval_fraction, seed=cfg.split_seed).eval if same_data else np.arange(len(shards))
        )
        per_domain = _evaluator(model, recipe, cfg, max_eval_tokens_per_domain)(shards, docs)
    evaluate = _evaluator(model, recipe, cfg, max_eval_tokens_per_domain)
    for name, path in (target_sets or {}).items():
        target_shards = TokenShards(tokenize_target_set(Path(path), name, run_dir))
        targets |= {name: evaluate(target_shards, np.arange(len(target_shards)))[name]}
    return write_score(run_dir, cfg, step, per_domain, targets, weights, suite)


def compare_runs(runs: list[Path], allow_different_suites: bool = False) -> dict[str, Any]:
    """The runs' scores, best first, when they were scored on one evaluation suite.

    Scores on different documents rank nothing: runs without a suite (a per-mixture held-out split) or
    with different suite hashes are refused, or, with ``allow_different_suites``, returned with
    ``comparable: false`` and a ``warning`` for the caller to print loudly.
    """
    rows = []
    for path in runs:
        run_dir = run_dir_of(path)
        if not (run_dir / SCORE).is_file():
            raise ConfigError(f"{run_dir}: no {SCORE}; finish training it (or `curate eval` it) first")
        result = json.loads((run_dir / SCORE).read_text())
        rows.append({"run": str(run_dir), "suite": (result.get("eval_suite") or {}).get("hash"), **result})
    suites = {row["suite"] for row in rows}
    record: dict[str, Any] = {"comparable": len(suites) == 1 and None not in suites}
    if not record["comparable"]:
        shown = ", ".join(f"{row['run']}: {(row['suite'] or 'no suite')[:12]}" for row in rows)
        message = (
            f"these runs were scored on different documents ({shown}); their scores are not comparable: "
            "score mixtures of the same corpora built by `curate mix` (same eval settings)"
        )
        if not allow_different_suites:
            raise ConfigError(message)
        record["warning"] = message
    record["eval_suite"] = rows[0]["suite"] if record["comparable"] else None
    record["runs"] = sorted(
        ({"run": r["run"], "score": r["score"], "eval_suite": r["suite"],
          "bpb": {d: v["bpb"] for d, v in {**r["domains"], **r["targets"]}.items()}} for r in rows),
        key=lambda row: row["score"],
    )  # fmt: skip
    return record


def _evaluator(model: TransformerLM, recipe: Recipe, cfg: TrainConfig, max_tokens: int | None) -> Any:
    device = next(model.parameters()).device
    return lambda shards, docs: evaluate_domains(
        model, recipe, shards, docs, cfg.seq_len, cfg.batch_size, device, max_tokens
    )


def _check_same_tokenizer(run_dir: Path, shards: TokenShards) -> None:
    """Evaluating with token ids of another vocabulary would give meaningless (yet finite) figures."""
    expected = file_sha256(run_dir / "tokenizer.json")
    if shards.meta["tokenizer"]["sha256"] != expected:
        raise ConfigError(
            f"{shards.folder} was tokenized with another tokenizer than the run {run_dir}; "
            "re-tokenize it with RUN/tokenizer.json"
        )


def target_texts(path: Path, name: str) -> list[str]:
    """The non-empty texts of a target set's JSONL/Parquet/WARC file (field ``text``)."""
    from curate.readers.fields import FieldMap
    from curate.readers.formats import infer_format, reader_for
    from curate.readers.records import RawDoc

    fmt = infer_format(path)
    if fmt is None or not path.is_file():
        raise ConfigError(f"target set {name}: {path} is not a readable JSONL/Parquet/WARC file")
    return [item.text for item in reader_for(fmt)(path, FieldMap()) if isinstance(item, RawDoc) and item.text]


def tokenize_target_set(path: Path, name: str, run_dir: Path) -> Path:
    """Token shards (one domain, ``name``) of a user's text file, cached under RUN/targets/NAME."""
    folder = run_dir / "targets" / name
    source = {"path": str(path.resolve())}
    marker = folder / "source.json"
    if is_token_dir(folder) and marker.is_file() and json.loads(marker.read_text()) == source:
        return folder
    texts = target_texts(path, name)
    if not texts:
        raise ConfigError(f"target set {name}: {path} holds no texts")
    tok = load_tokenizer(run_dir / "tokenizer.json")
    encoded = ((ids, name, n_bytes) for ids, n_bytes in encode_documents(tok, texts))
    write_token_shards(folder, encoded, tok.get_vocab_size(), run_dir / "tokenizer.json")
    marker.write_text(json.dumps(source))
    return folder


def parse_pairs(items: list[str], what: str) -> dict[str, str]:
    """``NAME=VALUE`` command-line items as a dict; a malformed item is a one-line ConfigError."""
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ConfigError(f"{what} {item!r}: expected NAME=VALUE")
        pairs[name] = value
    return pairs


def parse_weights(items: list[str]) -> dict[str, float]:
    """``--weight wiki=2 --weight code=1`` -> {"wiki": 2.0, "code": 1.0}."""
    weights = {}
    for name, value in parse_pairs(items, "--weight").items():
        try:
            weights[name] = float(value)
        except ValueError:
            raise ConfigError(f"--weight {name}={value}: the weight must be a number") from None
    return weights


def parse_target_sets(items: list[str]) -> dict[str, Path]:
    """``--set books=held_out.jsonl`` -> {"books": Path("held_out.jsonl")}."""
    return {name: Path(value) for name, value in parse_pairs(items, "--set").items()}

"""``curate bench train``: throughput and final loss of every precision recipe, and the framework's overhead.

Figures, not tests (see DESIGN.md: compare against a peer in the same run, as a ratio):

* ``tokens_per_s`` of each recipe, trained by :func:`trainer.train.train_run` on the same token shards,
  model, batches and seed;
* ``step_time_ratio_vs_bf16``: a recipe's step time over bf16's (the NVFP4 paper's claim is about speed on
  FP4 hardware; on a CPU the operands are emulated, so this measures the emulation's cost);
* ``final_eval_loss`` / ``final_eval_bpb`` on the held-out documents, token-weighted over domains;
* ``framework_vs_plain_fp32``: our fp32 tokens/s over a bare PyTorch loop training the same architecture
  on the same batches (>= 1.0: no measurable overhead). Rates are medians of per-step rates, so another
  process's burst on a shared machine moves them less than it moves a mean; ``wall_tokens_per_s`` (with
  metrics, checkpoints and the progress bar) is reported beside them.

Without a token folder the benchmark builds one from text that ships with packages (gensim's Wikipedia
pages and news, the standard library's code), so it runs on any machine.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from bench.machine import machine
from trainer.model import TransformerLM, lm_loss
from trainer.token_shards import TokenShards, WindowSampler, is_token_dir, write_token_shards
from trainer.tokenizer import encode_documents, load_tokenizer, train_tokenizer
from trainer.train import METRICS, TrainConfig, evaluate_held_out, padded_vocab, parse_train_config, train_run

BENCH_DIR = Path(".cache/bench/train")
RECIPES = ("fp32", "bf16", "fp8", "nvfp4")


def package_token_shards(folder: Path, vocab_size: int = 8192) -> Path:
    """Token shards of every package-shipped text (wiki, news, code), built once into ``folder``."""
    from curate.textsources import news_texts, stdlib_sources, wikipedia_pages

    if is_token_dir(folder):
        return folder
    docs = [(text, "wiki") for _, text in wikipedia_pages()]
    docs += [(text, "news") for text in news_texts()]
    docs += [(source, "code") for _, source in stdlib_sources(400)]
    texts = [text for text, _ in docs]
    tokenizer_path = train_tokenizer(texts, vocab_size, folder.parent / "tokenizers")
    tokenizer = load_tokenizer(tokenizer_path)
    encoded = encode_documents(tokenizer, texts)
    rows = ((ids, domain, n_bytes) for (ids, n_bytes), (_, domain) in zip(encoded, docs, strict=True))
    write_token_shards(folder, rows, tokenizer.get_vocab_size(), tokenizer_path)
    return folder


def plain_loop_tokens_per_s(cfg: TrainConfig, steps: int = 100) -> float:
    """A bare fp32 loop (model, AdamW, clipping; no schedule, metrics or checkpoints) on the same batches,
    for ``steps`` steps (a rate needs no full run); median step time, like :func:`median_rate`. With
    ``cfg.compile`` the bare model is compiled too, so the comparison stays like for like."""
    shards = TokenShards(cfg.token_dir)
    split = shards.split(cfg.eval_fraction, seed=cfg.split_seed)
    sampler = WindowSampler(shards, split.train, cfg.batch_size, cfg.seq_len, cfg.seed)
    torch.manual_seed(cfg.seed)
    model = TransformerLM(cfg.model_settings(padded_vocab(shards.vocab_size)))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.peak_lr, betas=cfg.betas, weight_decay=cfg.weight_decay
    )
    forward = torch.compile(model) if cfg.compile else model
    times: list[float] = []
    steps = min(steps, cfg.steps)
    for step in range(steps):
        started = time.perf_counter()
        batch = torch.from_numpy(next(sampler))
        loss = lm_loss(forward(batch[:, :-1]), batch[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        if step:  # the first step pays for allocation, as in the framework's own rate
            times.append(time.perf_counter() - started)
    return cfg.batch_size * cfg.seq_len / statistics.median(times or [float("inf")])


def median_rate(metrics: Path) -> float:
    """Tokens/s of the median step (the first skipped): robust to other processes' bursts on a shared box."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines()][1:]
    return statistics.median(r["tokens_per_s"] for r in rows) if rows else float("nan")


def _recipe_figures(cfg: TrainConfig, max_eval_tokens: int | None) -> dict[str, float]:
    run, summary = train_run(cfg)
    per_domain = evaluate_held_out(run, cfg, max_eval_tokens)
    tokens = sum(d["tokens"] for d in per_domain.values())
    n_bytes = sum(d["bytes"] for d in per_domain.values())
    nats = sum(d["loss"] * d["tokens"] for d in per_domain.values())
    return {
        "tokens_per_s": median_rate(cfg.out_dir / METRICS),
        "mean_tokens_per_s": summary["tokens_per_s"],
        "wall_tokens_per_s": summary["wall_tokens_per_s"],
        "final_train_loss": summary["final_loss"],
        "final_eval_loss": nats / tokens,
        "final_eval_bpb": nats / n_bytes / 0.6931471805599453,
    }


def bench_train(
    out_dir: Path = BENCH_DIR,
    token_dir: Path | None = None,
    preset: str = "tiny",
    recipes: tuple[str, ...] = RECIPES,
    tokens: int = 2_000_000,
    batch_size: int = 16,
    seq_len: int = 128,
    threads: int | None = None,
    seed: int = 0,
    max_eval_tokens_per_domain: int | None = 65_536,
    model: dict[str, Any] | None = None,
    compile: bool = False,
) -> dict[str, Any]:
    """Train the same proxy once per recipe (fresh runs under ``out_dir``) and return the JSON figures."""
    token_dir = token_dir or package_token_shards(out_dir / "tokens")
    steps = -(-tokens // (batch_size * seq_len))
    results: dict[str, dict[str, float]] = {}
    base_cfg = None
    for name in recipes:
        run_dir = out_dir / "runs" / name
        shutil.rmtree(run_dir, ignore_errors=True)  # a benchmark times a whole run, never a resumed tail
        cfg = parse_train_config(
            token_dir=token_dir,
            out_dir=run_dir,
            preset=preset,
            model=model or {},
            compile=compile,
            precision={"name": name},
            steps=steps,
            batch_size=batch_size,
            seq_len=seq_len,
            seed=seed,
            threads=threads,
            checkpoint_every=max(steps, 1),
            progress=True,
        )
        base_cfg = base_cfg or cfg
        results[name] = _recipe_figures(cfg, max_eval_tokens_per_domain)
    if "bf16" in results:
        for figures in results.values():
            figures["step_time_ratio_vs_bf16"] = results["bf16"]["tokens_per_s"] / figures["tokens_per_s"]
    plain = plain_loop_tokens_per_s(base_cfg) if base_cfg else None  # the loop itself is always fp32
    figures: dict[str, Any] = {
        "preset": preset,
        "tokens": steps * batch_size * seq_len,
        "steps": steps,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "compile": compile,
        "token_dir": str(token_dir),
        "recipes": results,
        "plain_fp32_tokens_per_s": plain,
        "machine": {**machine(), "cuda": torch.cuda.is_available()},
    }
    if plain and "fp32" in results:
        figures["framework_vs_plain_fp32"] = results["fp32"]["tokens_per_s"] / plain
    if {"bf16", "nvfp4"} <= set(results):
        figures["nvfp4_eval_loss_vs_bf16"] = (
            results["nvfp4"]["final_eval_loss"] / results["bf16"]["final_eval_loss"]
        )
    return figures

"""``curate bench osp``: does the outlier-safe recipe (OSP) keep activations tame and 4-bit loss small?

OSP ("Outlier-Safe Pre-Training for Robust 4-Bit Quantization", Park et al. 2025): Muon, single-scale
RMSNorm and a learnable embedding projection keep the residual stream free of outlier channels, so a
model quantised to 4 bits after training loses little. Per seed (paired: same data, split and seed), the
tiny proxy is trained in bf16 twice, with the standard recipe (AdamW, per-channel RMSNorm) and with
``--recipe osp``, on the real-text corpus of ``bench.meco`` (Wikipedia, Gutenberg books, standard-library
code, web pages, news). Then, on the held-out documents:

* the excess kurtosis of every block's output (the residual stream), on fixed held-out windows;
* the eval loss of the trained weights under bf16 and under NVFP4 with every block quantised (weights
  and activations, ``high_precision_last=0``: post-training W4A4 with NVFP4's 16-value block scales),
  and the gap ``nvfp4 - bf16`` in nats per token.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.machine import machine
from bench.meco import url_corpus_token_shards
from mixers.significance import mean_and_se, paired_comparison
from trainer.activations import block_output_kurtosis
from trainer.evaluate import evaluate_domains
from trainer.model import TransformerLM
from trainer.precision import PrecisionConfig, Recipe
from trainer.token_shards import WindowSampler
from trainer.train import Run, parse_train_config, recipe_optimizer, train_run

BENCH_DIR = Path(".cache/bench/osp")
RECIPES = ("standard", "osp")
KURTOSIS_BATCHES = 4
MAX_EVAL_TOKENS = 8_192  # per domain, whole documents; NVFP4 emulation makes evaluation costly


def pooled_loss(per_domain: dict[str, dict[str, float]]) -> float:
    """Nats per token over every held-out domain together."""
    return sum(d["loss"] * d["tokens"] for d in per_domain.values()) / sum(
        d["tokens"] for d in per_domain.values()
    )


def quantised_copy(run: Run, name: str) -> tuple[TransformerLM, Recipe]:
    """The trained weights in a fresh model under precision ``name``, every block quantised."""
    recipe = Recipe(PrecisionConfig(name=name, high_precision_last=0), run.device, run.cfg.seed)
    model = recipe.prepare(TransformerLM(run.model_cfg)).to(run.device)
    model.load_state_dict(run.model.state_dict())
    return model, recipe


def held_out_windows(run: Run) -> list[torch.Tensor]:
    """Fixed (B, T) input windows of held-out documents, the same for every recipe of a seed."""
    sampler = WindowSampler(run.shards, run.split.eval, run.cfg.batch_size, run.cfg.seq_len, seed=12345)
    return [torch.from_numpy(sampler.batch(k)[:, :-1]).to(run.device) for k in range(KURTOSIS_BATCHES)]


def recipe_figures(run: Run) -> dict[str, Any]:
    """Kurtosis per block and eval loss under bf16 and NVFP4 of one trained run."""
    cfg = run.cfg
    losses = {}
    kurtosis: list[float] = []
    for name in ("bf16", "nvfp4"):
        model, recipe = quantised_copy(run, name)
        per_domain = evaluate_domains(
            model,
            recipe,
            run.shards,
            run.split.eval,
            cfg.seq_len,
            cfg.batch_size,
            run.device,
            MAX_EVAL_TOKENS,
        )
        losses[name] = pooled_loss(per_domain)
        if name == "bf16":
            kurtosis = block_output_kurtosis(model, recipe, held_out_windows(run))
    return {
        "eval_loss_bf16": losses["bf16"],
        "eval_loss_nvfp4": losses["nvfp4"],
        "nvfp4_gap": losses["nvfp4"] - losses["bf16"],
        "kurtosis_per_block": kurtosis,
        "kurtosis_mean": float(np.mean(kurtosis)),
        "kurtosis_max": float(np.max(kurtosis)),
    }


def bench_osp(
    out_dir: Path = BENCH_DIR,
    tokens: int = 300_000,
    seeds: tuple[int, ...] = (0, 1, 2),
    preset: str = "tiny",
    threads: int | None = 1,
    batch_size: int = 16,
    seq_len: int = 128,
) -> dict[str, Any]:
    """Train both recipes per seed in bf16 and return the JSON figures (see the module doc)."""
    token_dir = url_corpus_token_shards(Path(".cache/bench/meco/corpus"))
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    steps = math.ceil(tokens / (batch_size * seq_len))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in RECIPES}
    for seed in seeds:
        for name in RECIPES:
            run_dir = out_dir / "runs" / f"{name}-s{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)
            cfg = parse_train_config(
                token_dir=token_dir, out_dir=run_dir, preset=preset, precision={"name": "bf16"}, steps=steps,
                batch_size=batch_size, seq_len=seq_len, seed=seed, threads=threads, checkpoint_every=steps,
                eval_fraction=0.1, progress=False, recipe=name, optimizer=recipe_optimizer(name, None),
            )  # fmt: skip
            cpu = time.process_time()
            run, summary = train_run(cfg)
            figures = recipe_figures(run)
            runs[name].append({"seed": seed, "final_train_loss": summary["final_loss"], **figures,
                               "cpu_s": time.process_time() - cpu})  # fmt: skip
    return {
        "preset": preset,
        "tokens": steps * batch_size * seq_len,
        "steps": steps,
        "train_precision": "bf16",
        "quantised_eval": "nvfp4, all blocks (W4A4 post-training), embeddings/head/norms/attention bf16",
        "token_dir": str(token_dir),
        "summary": {
            name: {
                key: dict(zip(("mean", "se"), mean_and_se([r[key] for r in rows]), strict=True))
                for key in ("eval_loss_bf16", "eval_loss_nvfp4", "nvfp4_gap", "kurtosis_mean", "kurtosis_max")
            }
            for name, rows in runs.items()
        },
        "comparisons": {
            key: paired_comparison(
                [r[key] for r in runs["osp"]], [r[key] for r in runs["standard"]], ("osp", "standard")
            )
            for key in ("nvfp4_gap", "kurtosis_mean", "kurtosis_max", "eval_loss_bf16", "eval_loss_nvfp4")
        },  # fmt: skip
        "runs": runs,
        "cpu_s": time.process_time() - started_cpu,
        "wall_s": time.perf_counter() - started_wall,
        "machine": machine(),
    }

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

And the same two recipes TRAINED in NVFP4 (``--precision nvfp4``, every block quantised as above: W4A4
forward, 4-bit gradients with stochastic rounding and the wgrad Hadamard), on the same seeds: each
recipe's ``nvfp4-trained - bf16-trained`` eval loss gap (each model evaluated in the precision it trained
in), and the paired verdict osp vs standard on that gap. Post-training quantisation asks whether trained
weights survive 4 bits; 4-bit training asks whether the recipe still learns with 4-bit arithmetic.
"""

from __future__ import annotations

import json
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
from trainer.train import METRICS, Run, parse_train_config, recipe_optimizer, train_run

BENCH_DIR = Path(".cache/bench/osp")
CORPUS_DIR = Path(".cache/bench/meco/corpus")  # the MeCo bench's corpus: built once, read by both
RECIPES = ("standard", "osp")
ALL_BLOCKS = 0  # high_precision_last: no block left in bf16, for quantised evaluation and training alike
KURTOSIS_BATCHES = 4
MAX_EVAL_TOKENS = 8_192  # per domain, whole documents; NVFP4 emulation makes evaluation costly
SUMMARISED = (
    "eval_loss_bf16", "eval_loss_nvfp4", "nvfp4_gap", "kurtosis_mean", "kurtosis_max",
    "eval_loss_nvfp4_trained", "nvfp4_training_gap", "kurtosis_mean_nvfp4_trained",
)  # fmt: skip


def pooled_loss(per_domain: dict[str, dict[str, float]]) -> float:
    """Nats per token over every held-out domain together."""
    return sum(d["loss"] * d["tokens"] for d in per_domain.values()) / sum(
        d["tokens"] for d in per_domain.values()
    )


def held_out_loss(model: TransformerLM, recipe: Recipe, run: Run) -> float:
    """Pooled eval loss (nats per token) of ``model`` run under ``recipe`` on ``run``'s held-out documents."""
    cfg = run.cfg
    per_domain = evaluate_domains(
        model, recipe, run.shards, run.split.eval, cfg.seq_len, cfg.batch_size, run.device, MAX_EVAL_TOKENS
    )
    return pooled_loss(per_domain)


def quantised_copy(run: Run, name: str) -> tuple[TransformerLM, Recipe]:
    """The trained weights in a fresh model under precision ``name``, every block quantised."""
    recipe = Recipe(PrecisionConfig(name=name, high_precision_last=ALL_BLOCKS), run.device, run.cfg.seed)
    model = recipe.prepare(TransformerLM(run.model_cfg)).to(run.device)
    model.load_state_dict(run.model.state_dict())
    return model, recipe


def held_out_windows(run: Run) -> list[torch.Tensor]:
    """Fixed (B, T) input windows of held-out documents, the same for every recipe of a seed."""
    sampler = WindowSampler(run.shards, run.split.eval, run.cfg.batch_size, run.cfg.seq_len, seed=12345)
    return [torch.from_numpy(sampler.batch(k)[:, :-1]).to(run.device) for k in range(KURTOSIS_BATCHES)]


def recipe_figures(run: Run) -> dict[str, Any]:
    """Kurtosis per block and eval loss under bf16 and NVFP4 (post-training) of one bf16-trained run."""
    bf16_model, bf16_recipe = quantised_copy(run, "bf16")
    losses = {"bf16": held_out_loss(bf16_model, bf16_recipe, run)}
    losses["nvfp4"] = held_out_loss(*quantised_copy(run, "nvfp4"), run)
    kurtosis = block_output_kurtosis(bf16_model, bf16_recipe, held_out_windows(run))
    return {
        "eval_loss_bf16": losses["bf16"],
        "eval_loss_nvfp4": losses["nvfp4"],
        "nvfp4_gap": losses["nvfp4"] - losses["bf16"],
        "kurtosis_per_block": kurtosis,
        "kurtosis_mean": float(np.mean(kurtosis)),
        "kurtosis_max": float(np.max(kurtosis)),
    }


def nvfp4_trained_figures(run: Run, eval_loss_bf16: float) -> dict[str, Any]:
    """Eval loss of a run trained in NVFP4, evaluated as it trained (its own quantised model), its gap to
    the same recipe and seed trained in bf16, and its residual-stream kurtosis."""
    loss = held_out_loss(run.model, run.recipe, run)
    kurtosis = block_output_kurtosis(run.model, run.recipe, held_out_windows(run))
    return {
        "eval_loss_nvfp4_trained": loss,
        "nvfp4_training_gap": loss - eval_loss_bf16,
        "kurtosis_per_block_nvfp4_trained": kurtosis,
        "kurtosis_mean_nvfp4_trained": float(np.mean(kurtosis)),
    }


def train_recipe(
    common: dict[str, Any], run_dir: Path, recipe: str, precision: str, resume: bool
) -> tuple[Run, float, float]:
    """A run of ``recipe`` trained in ``precision`` (fresh, or continued from ``run_dir`` with ``resume``):
    the live run, its last logged training loss, the CPU seconds this call spent."""
    if not resume:
        shutil.rmtree(run_dir, ignore_errors=True)
    cfg = parse_train_config(
        **common, out_dir=run_dir, recipe=recipe, optimizer=recipe_optimizer(recipe, None),
        precision={"name": precision, "high_precision_last": ALL_BLOCKS},
    )  # fmt: skip
    cpu = time.process_time()
    run, _ = train_run(cfg)
    return run, last_logged_loss(run_dir), time.process_time() - cpu


def last_logged_loss(run_dir: Path) -> float:
    """The training loss of the run's last step, from its metrics log (a finished run resumed logs none)."""
    lines = (run_dir / METRICS).read_text().splitlines()
    return float(json.loads(lines[-1])["loss"])


def seed_figures(common: dict[str, Any], out_dir: Path, recipe: str, resume: bool) -> dict[str, Any]:
    """One recipe at one seed: trained in bf16 (post-training figures) and in NVFP4 (training figures)."""
    seed = common["seed"]
    run_dir = out_dir / "runs" / f"{recipe}-s{seed}"
    run, final_loss, train_cpu = train_recipe(common, run_dir, recipe, "bf16", resume)
    cpu = time.process_time()
    figures = {"seed": seed, "final_train_loss": final_loss, **recipe_figures(run)}
    figures["cpu_s"] = train_cpu + time.process_time() - cpu
    run_dir = out_dir / "runs" / f"{recipe}-nvfp4-s{seed}"
    run, final_loss, train_cpu = train_recipe(common, run_dir, recipe, "nvfp4", resume)
    cpu = time.process_time()
    figures |= {"final_train_loss_nvfp4_trained": final_loss,
                **nvfp4_trained_figures(run, figures["eval_loss_bf16"])}  # fmt: skip
    figures["cpu_s_nvfp4_trained"] = train_cpu + time.process_time() - cpu
    return figures


def bench_osp(
    out_dir: Path = BENCH_DIR,
    tokens: int = 300_000,
    seeds: tuple[int, ...] = (0, 1, 2),
    preset: str = "tiny",
    threads: int | None = 1,
    batch_size: int = 16,
    seq_len: int = 128,
    corpus_dir: Path = CORPUS_DIR,
    resume: bool = False,
) -> dict[str, Any]:
    """Train both recipes per seed in bf16 and in NVFP4 and return the JSON figures (see the module doc).
    ``resume`` keeps the run folders of an earlier invocation (finished runs are only evaluated again;
    ``cpu_s`` then counts this invocation's work only)."""
    token_dir = url_corpus_token_shards(corpus_dir)
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    steps = math.ceil(tokens / (batch_size * seq_len))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in RECIPES}
    for seed in seeds:
        common = {
            "token_dir": token_dir, "preset": preset, "steps": steps, "batch_size": batch_size,
            "seq_len": seq_len, "seed": seed, "threads": threads, "checkpoint_every": steps,
            "eval_fraction": 0.1, "progress": False,
        }  # fmt: skip
        for name in RECIPES:
            runs[name].append(seed_figures(common, out_dir, name, resume))
    return {
        "preset": preset,
        "tokens": steps * batch_size * seq_len,
        "steps": steps,
        "train_precision": ["bf16", "nvfp4"],
        "quantised_eval": "nvfp4, all blocks (W4A4 post-training), embeddings/head/norms/attention bf16",
        "nvfp4_training": "--precision nvfp4 with every block quantised, evaluated in nvfp4; "
        "nvfp4_training_gap = its eval loss - the bf16-trained run's bf16 eval loss (same recipe and seed)",
        "token_dir": str(token_dir),
        "summary": {
            name: {
                key: dict(zip(("mean", "se"), mean_and_se([r[key] for r in rows]), strict=True))
                for key in SUMMARISED
            }
            for name, rows in runs.items()
        },
        "comparisons": {
            key: paired_comparison(
                [r[key] for r in runs["osp"]], [r[key] for r in runs["standard"]], ("osp", "standard")
            )
            for key in SUMMARISED
        },
        "runs": runs,
        "cpu_s": time.process_time() - started_cpu,
        "wall_s": time.perf_counter() - started_wall,
        "machine": machine(),
    }

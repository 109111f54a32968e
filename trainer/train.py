"""The proxy training loop: one validated config in, a run folder out, resumable at any checkpoint.

A run folder holds::

    config.json          the TrainConfig (a resumed run must match it, except the fields in RESUME_FREE)
    model.json           the ModelConfig
    tokenizer.json       copy of the shards' tokenizer, so the run is self-contained for evaluation
    metrics.jsonl        one line per update: step, tokens, loss, lr, grad_norm, tokens_per_s
    checkpoint/state.pt  latest model + optimiser + sampler + SR generator + RNG states (atomic)

Why a killed run continues on the same loss curve: batch k is a pure function of (seed, k); the only
other randomness, nvfp4's stochastic rounding, comes from a generator whose state is checkpointed; the
learning rate is a function of the step; and metrics lines written after the last checkpoint are dropped
on resume, so the file never holds two versions of a step.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from curate.errors import ConfigError
from trainer.choices import MetadataField, TrainRecipe
from trainer.evaluate import evaluate_domains
from trainer.metadata import conditioned_steps, document_prefixes
from trainer.model import ModelConfig, PresetName, TransformerLM, lm_loss, model_config
from trainer.optim import OptimizerName, ScheduleName, build_optimizers, lr_factor, set_lr
from trainer.precision import PrecisionConfig, Recipe
from trainer.token_shards import PrefixedWindowSampler, Split, TokenShards, WindowSampler

METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint/state.pt"
METRIC_FIELDS = ("step", "tokens", "loss", "lr", "grad_norm", "tokens_per_s")
# Fields that may change between a run and its resumption.
RESUME_FREE = {"stop_after", "compile", "progress", "threads", "device"}
DEFAULT_LR = {"tiny": 3e-3, "small": 1.5e-3, "base": 6e-4}
# Training recipes (`--recipe`): model switches and the optimiser they need. OSP ("Outlier-Safe
# Pre-Training", Park et al. 2025): Muon, single-scale RMSNorm and a learnable embedding projection, which
# together keep activations free of the outlier channels that make 4-bit quantisation lossy.
TRAIN_RECIPES: dict[str, dict[str, Any]] = {
    "standard": {"model": {}, "optimizer": None},
    "osp": {"model": {"norm": "single_scale", "embed_proj": True}, "optimizer": "muon"},
}


def recipe_optimizer(recipe: TrainRecipe, optimizer: OptimizerName | None) -> OptimizerName:
    """The optimiser a recipe trains with: the one named, else the recipe's, else AdamW."""
    return optimizer or TRAIN_RECIPES[recipe]["optimizer"] or "adamw"


class TrainConfig(BaseModel):
    """Everything a proxy run depends on; two runs with equal configs produce equal loss curves on CPU."""

    model_config = ConfigDict(extra="forbid")

    token_dir: Path
    out_dir: Path
    preset: PresetName = "tiny"
    model: dict[str, Any] = Field(
        default_factory=dict, description="ModelConfig fields overriding the preset"
    )
    precision: PrecisionConfig = PrecisionConfig()
    steps: int = Field(gt=0)
    batch_size: int = Field(default=16, gt=0)
    seq_len: int = Field(default=128, gt=1)
    lr: float | None = Field(default=None, gt=0, description="peak AdamW learning rate; default per preset")
    muon_lr: float = Field(default=0.02, gt=0)
    optimizer: OptimizerName = "adamw"
    recipe: TrainRecipe = Field(default="standard", description="osp: Muon + single-scale norms + embed proj")
    metadata_conditioning: MetadataField | None = Field(
        default=None, description="prepend each document's url or site (MeCo), loss-masked"
    )
    cooldown: float = Field(default=0.1, ge=0, lt=1, description="MeCo: last share of steps without metadata")
    schedule: ScheduleName = "cosine"
    warmup_steps: int | None = Field(default=None, ge=0, description="default: 5% of the steps, at least 1")
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1)
    decay_fraction: float = Field(default=0.2, gt=0, le=1, description="WSD: share of steps spent decaying")
    weight_decay: float = Field(default=0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = Field(default=1.0, ge=0, description="max global grad norm; 0 disables clipping")
    seed: int = 0
    eval_fraction: float = Field(default=0.05, ge=0, lt=1, description="held-out share of each domain's docs")
    split_seed: int = 0
    checkpoint_every: int = Field(default=100, gt=0)
    stop_after: int | None = Field(default=None, gt=0, description="stop (and checkpoint) after this step")
    device: str = "auto"
    compile: bool = Field(
        default=False, description="torch.compile the model and, on CPU, the NVFP4 quantiser"
    )
    threads: int | None = Field(default=None, gt=0, description="torch CPU threads; default: torch's choice")
    progress: bool = True

    @model_validator(mode="after")
    def _recipe_has_its_optimizer(self) -> TrainConfig:
        needed = TRAIN_RECIPES[self.recipe]["optimizer"]
        if needed and self.optimizer != needed:
            raise ValueError(
                f"recipe {self.recipe} trains with {needed}, not {self.optimizer}; drop --optimizer"
            )
        return self

    @model_validator(mode="after")
    def _model_is_buildable(self) -> TrainConfig:
        """Check the model overrides now (with a stand-in vocabulary), not after the data is loaded."""
        unknown = set(self.model) - set(ModelConfig.model_fields)
        if unknown:
            raise ValueError(
                f"unknown model field(s) {sorted(unknown)}; known: {sorted(ModelConfig.model_fields)}"
            )
        try:
            model = self.model_settings(vocab_size=256)
        except ValidationError as error:
            item = error.errors()[0]
            raise ValueError(f"model.{'.'.join(map(str, item['loc']))}: {item['msg']}") from None
        if self.seq_len > model.max_seq_len:
            raise ValueError(f"seq_len {self.seq_len} exceeds the model's max_seq_len {model.max_seq_len}")
        return self

    def model_settings(self, vocab_size: int) -> ModelConfig:
        """The preset with the recipe's switches and this run's overrides; rotary tables cover at least
        1024 positions."""
        fields = {"max_seq_len": max(self.seq_len, 1024), **TRAIN_RECIPES[self.recipe]["model"], **self.model}
        return model_config(self.preset, vocab_size, **fields)

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.preset]

    @property
    def warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else max(1, round(0.05 * self.steps))

    def comparable(self) -> dict[str, Any]:
        """The fields that must match for a resume to continue the same run."""
        return self.model_dump(mode="json", exclude=RESUME_FREE)


def parse_train_config(**fields: Any) -> TrainConfig:
    """A TrainConfig, or one ConfigError line naming the bad field (never a pydantic dump)."""
    try:
        return TrainConfig(**fields)
    except ValidationError as error:
        item = error.errors()[0]
        where = ".".join(str(part) for part in item["loc"])
        raise ConfigError(f"train config {where}: {item['msg']}") from None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a torch device; use auto, cpu or cuda[:N]") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Global RNG states in types ``torch.load(weights_only=True)`` accepts (tensors, ints, lists)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, python_state, python_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "gauss": gauss,
        },
        "python": {"version": version, "state": list(python_state), "gauss": python_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["gauss"])
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Run:
    """Live objects of a run (data, model, recipe, optimisers), built alike for fresh and resumed runs."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.shards = TokenShards(cfg.token_dir)
        self.split: Split = self.shards.split(cfg.eval_fraction, seed=cfg.split_seed)
        self.conditioning: dict[str, Any] | None = None  # metadata conditioning's figures, when on
        self.sampler = self._sampler(cfg)
        self.model_cfg = cfg.model_settings(padded_vocab(self.shards.vocab_size))
        seed_everything(cfg.seed)
        self.recipe = Recipe(cfg.precision, self.device, cfg.seed, compile=cfg.compile)
        self.model = self.recipe.prepare(TransformerLM(self.model_cfg)).to(self.device)
        self.optimizers = build_optimizers(
            self.model, cfg.optimizer, cfg.peak_lr, cfg.weight_decay, cfg.betas, cfg.muon_lr
        )
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        self.step = 0

    def _sampler(self, cfg: TrainConfig) -> WindowSampler:
        """Plain windows, or (metadata conditioning) windows of prefixed documents until the cooldown."""
        docs = self.split.train
        if cfg.metadata_conditioning is None:
            return WindowSampler(self.shards, docs, cfg.batch_size, cfg.seq_len, cfg.seed)
        prefixes = document_prefixes(self.shards, docs, cfg.metadata_conditioning, cfg.seq_len)
        steps = conditioned_steps(cfg.steps, cfg.cooldown)
        self.conditioning = {
            "field": cfg.metadata_conditioning,
            "documents_with_metadata": sum(1 for p in prefixes if len(p)),
            "training_documents": len(docs),
            "conditioned_steps": steps,
        }
        return PrefixedWindowSampler(
            self.shards, docs, cfg.batch_size, cfg.seq_len, cfg.seed, prefixes, steps
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "sampler": self.sampler.state_dict(),
            "recipe": self.recipe.state_dict(),
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.model.load_state_dict(state["model"])
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        self.sampler.load_state_dict(state["sampler"])
        self.recipe.load_state_dict(state["recipe"])
        set_rng_state(state["rng"])

    def train_step(self) -> dict[str, float]:
        """One update on the sampler's next batch; returns the logged figures of that update."""
        cfg = self.cfg
        lr = set_lr(
            self.optimizers,
            lr_factor(self.step, cfg.steps, cfg.warmup, cfg.schedule, cfg.min_lr_ratio, cfg.decay_fraction),
        )
        started = time.perf_counter()
        tokens, mask = self.sampler.next_masked()
        batch = torch.from_numpy(tokens).to(self.device)
        with self.recipe.autocast():
            logits = self.forward(batch[:, :-1])
        loss = masked_lm_loss(
            logits, batch[:, 1:], None if mask is None else torch.from_numpy(mask).to(self.device)
        )
        loss.backward()
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        for optimizer in self.optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()  # synchronises, so the timing below covers the whole step
        self.step += 1
        per_step = cfg.batch_size * cfg.seq_len
        record = {
            "step": self.step,
            "tokens": self.step * per_step,
            "loss": loss_value,
            "lr": lr,
            "grad_norm": float(grad_norm),
            "tokens_per_s": per_step / (time.perf_counter() - started),
        }
        if self.conditioning is not None:
            record["conditioned"] = mask is not None
        return record


def masked_lm_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean token loss over the targets the mask keeps (all without one): metadata prefixes weigh zero."""
    if mask is None:
        return lm_loss(logits, targets)
    losses = lm_loss(logits, targets, reduction="none")
    weights = mask.flatten().to(losses.dtype)
    return (losses * weights).sum() / weights.sum().clamp_min(1.0)


def padded_vocab(vocab_size: int) -> int:
    """Embedding rows rounded up to a multiple of 64: aligned GEMMs, and 16-blocks for NVFP4."""
    return 64 * -(-vocab_size // 64)


def save_checkpoint(run: Run, out_dir: Path) -> None:
    """Write-then-rename, so a kill during the write leaves the previous checkpoint intact."""
    path = out_dir / CHECKPOINT
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(run.state_dict(), tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Always onto the CPU: RNG states must be CPU tensors; load_state_dict moves weights to the device."""
    return torch.load(path, map_location="cpu", weights_only=True)


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop lines of updates after the checkpoint: the resumed run will log them again."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= last_step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


def prepare_out_dir(cfg: TrainConfig, model_cfg: ModelConfig, tokenizer_path: Path) -> bool:
    """Create the run folder or check it belongs to this config; returns whether a checkpoint exists."""
    out = cfg.out_dir
    saved_cfg = out / "config.json"
    if saved_cfg.exists():
        previous = TrainConfig.model_validate_json(saved_cfg.read_text())
        if previous.comparable() != cfg.comparable():
            changed = sorted(k for k, v in cfg.comparable().items() if previous.comparable().get(k) != v)
            raise ConfigError(
                f"{out} holds a run with a different config ({', '.join(changed)} differ); "
                "use another --out or delete it"
            )
    out.mkdir(parents=True, exist_ok=True)
    saved_cfg.write_text(cfg.model_dump_json(indent=2) + "\n")
    (out / "model.json").write_text(model_cfg.model_dump_json(indent=2) + "\n")
    if tokenizer_path.is_file():
        shutil.copyfile(tokenizer_path, out / "tokenizer.json")
    return (out / CHECKPOINT).exists()


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) the run in ``cfg.out_dir``; returns the summary of :func:`train_run`."""
    return train_run(cfg)[1]


def evaluate_held_out(run: Run, cfg: TrainConfig, max_eval_tokens: int | None) -> dict[str, dict[str, float]]:
    """Per-domain bits per byte of a trained run on its own held-out documents (never trained on)."""
    return evaluate_domains(
        run.model, run.recipe, run.shards, run.split.eval, cfg.seq_len, cfg.batch_size, run.device,
        max_eval_tokens,
    )  # fmt: skip


def train_run(cfg: TrainConfig) -> tuple[Run, dict[str, Any]]:
    """Train (or resume) up to ``cfg.steps`` (or ``cfg.stop_after``); the live run and a JSON summary."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # one thread beats two when the cores are oversubscribed
    run = Run(cfg)
    if prepare_out_dir(cfg, run.model_cfg, run.shards.tokenizer_path):
        run.load_state_dict(load_checkpoint(cfg.out_dir / CHECKPOINT))
    metrics_path = cfg.out_dir / METRICS
    truncate_metrics(metrics_path, run.step)
    last = min(cfg.steps, cfg.stop_after or cfg.steps)
    history: list[dict[str, float]] = []
    first_step_done = None
    with open(metrics_path, "a", buffering=1) as metrics, TrainProgress(last, run.step, cfg.progress) as bar:
        while run.step < last:
            if len(history) == 1:
                first_step_done = time.perf_counter()
            record = run.train_step()
            metrics.write(json.dumps(record) + "\n")
            history.append(record)
            bar.update(record)
            if run.step % cfg.checkpoint_every == 0 or run.step == last:
                save_checkpoint(run, cfg.out_dir)
    summary = {
        "out_dir": str(cfg.out_dir),
        "step": run.step,
        "steps": cfg.steps,
        "finished": run.step >= cfg.steps,
        "final_loss": history[-1]["loss"] if history else None,
        "tokens_per_s": _mean_rate(history),
        "wall_tokens_per_s": _wall_rate(history, first_step_done),
    }
    if run.conditioning is not None:
        summary["metadata_conditioning"] = run.conditioning
    return run, summary


def _wall_rate(history: list[dict[str, float]], first_step_done: float | None) -> float | None:
    """Tokens per wall second after the first step, metrics, checkpoints and progress bar included: the
    figure to hold against a bare loop when asking what the framework costs."""
    if first_step_done is None or len(history) < 2:
        return None
    per_step = history[0]["tokens"] / history[0]["step"]
    return per_step * (len(history) - 1) / (time.perf_counter() - first_step_done)


def _mean_rate(history: list[dict[str, float]]) -> float | None:
    """Tokens per second over this invocation, skipping the first step (allocation, warm-up) if possible."""
    timed = history[1:] or history
    if not timed:
        return None
    per_step = timed[0]["tokens"] / timed[0]["step"]
    return per_step * len(timed) / sum(per_step / r["tokens_per_s"] for r in timed)


class TrainProgress:
    """A rich progress bar on stderr when a person is watching (a TTY), silent otherwise."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not (enabled and sys.stderr.isatty()),
        )
        self.task = self.progress.add_task("train", total=total, completed=done, info="")

    def __enter__(self) -> TrainProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, record: dict[str, float]) -> None:
        info = f"loss {record['loss']:.3f}  {record['tokens_per_s']:,.0f} tok/s"
        self.progress.update(self.task, completed=record["step"], info=info)

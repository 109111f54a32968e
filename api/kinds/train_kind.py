"""`train` jobs: a proxy LM trained on a mixture and scored, by `trainer.proxy.train_proxy`.

The config mirrors `train_proxy`'s arguments. It is validated here without importing the trainer (and
so torch): the server stays light, and the trainer validates its own TrainConfig again in the worker.
Resumable: a rerun with the same arguments continues from the run's last checkpoint. Progress is the
last step in metrics.jsonl against the planned steps; the result is OUT/result.json.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.errors import FieldError
from api.kinds.base import JobKind, KindContext, Prepared, RunContext
from api.store import Job
from curate.paths import PathParam

CONFIG = ("body", "config")
SCORE = "result.json"
METRICS = "metrics.jsonl"


class TrainJobConfig(BaseModel):
    """The arguments of `trainer.proxy.train_proxy` (presets and precisions as the trainer defines them)."""

    model_config = ConfigDict(extra="forbid")

    mixture: PathParam = Field(description="a mixture folder (Parquet parts) or a token-shard folder")
    output: PathParam | None = Field(
        default=None, description="the run folder (checkpoints, metrics, result.json)"
    )
    preset: Literal["tiny", "small", "base"] = "tiny"
    precision: Literal["fp32", "bf16", "fp8", "nvfp4"] = "nvfp4"
    steps: int | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, gt=0, description="train on this many tokens instead of steps")
    seed: int = 0
    batch_size: int = Field(default=16, gt=0, le=4096)
    seq_len: int = Field(default=128, gt=1, le=65536)
    vocab_size: int = Field(default=8192, ge=257, le=262144, description="256 bytes + <|endoftext|> at least")
    tokenizer: PathParam | None = None
    weights: dict[str, float] | None = Field(default=None, description="per-domain weights of the score")
    max_eval_tokens_per_domain: int | None = Field(default=65_536, gt=0)
    device: str = Field(default="cpu", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="torch CPU threads for this job (default: torch's, one per core)",
    )

    @model_validator(mode="after")
    def _steps_or_tokens(self) -> TrainJobConfig:
        if (self.steps is None) == (self.tokens is None):
            raise ValueError("give exactly one of `steps` or `tokens`")
        return self

    def planned_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return math.ceil((self.tokens or 0) / (self.batch_size * self.seq_len))


def last_step(metrics: Path) -> int:
    """The last recorded step; a partly written last line (killed mid-write) is ignored."""
    if not metrics.is_file():
        return 0
    step = 0
    for line in metrics.read_text(encoding="utf-8").splitlines():
        try:
            step = int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return step


class TrainKind(JobKind):
    name = "train"
    summary = "train a proxy LM on a mixture and score it (result.json)"
    Config = TrainJobConfig

    def prepare(
        self, job_id: str, config: dict[str, Any], options: dict[str, Any], ctx: KindContext
    ) -> Prepared:
        model, opts = self.validate(config, options, ctx.policy)
        assert isinstance(model, TrainJobConfig)
        confined = model.model_dump()
        mixture = ctx.policy.confine(model.mixture, (*CONFIG, "mixture"))
        if not Path(mixture).is_dir():
            raise FieldError((*CONFIG, "mixture"), f"{mixture}: no such mixture or token-shard folder")
        confined["mixture"] = str(Path(mixture).resolve())
        if model.tokenizer is not None:
            confined["tokenizer"] = ctx.policy.confine(model.tokenizer, (*CONFIG, "tokenizer"))
        output = model.output or str(ctx.settings.jobs_output_root / job_id)
        confined["output"] = str(Path(ctx.policy.confine(output, (*CONFIG, "output"))).resolve())
        return Prepared(
            confined, opts.model_dump(), confined["output"], [confined["output"]], model.planned_steps()
        )

    def run(self, job: Job, ctx: RunContext) -> dict[str, Any]:
        import torch

        from trainer.proxy import train_proxy

        cfg = TrainJobConfig.model_validate(job.config)
        if cfg.threads is not None:  # on a shared machine, spinning intra-op threads cost more than they give
            torch.set_num_threads(cfg.threads)
        ctx.progress(cfg.planned_steps(), last_step(Path(job.output) / METRICS))
        tokenizer = Path(cfg.tokenizer) if cfg.tokenizer else None
        result = train_proxy(
            Path(cfg.mixture),
            Path(job.output),
            cfg.preset,
            cfg.precision,
            cfg.steps,
            cfg.seed,
            tokens=cfg.tokens,
            batch_size=cfg.batch_size,
            seq_len=cfg.seq_len,
            vocab_size=cfg.vocab_size,
            tokenizer=tokenizer,
            weights=cfg.weights,
            max_eval_tokens_per_domain=cfg.max_eval_tokens_per_domain,
            device=cfg.device,
            progress=False,
        )
        return {k: v for k, v in result.items() if k != "domains"} | {"domains": result.get("domains")}

    def progress(self, job: Job) -> tuple[int | None, int | None]:
        if job.state == "running":
            return last_step(Path(job.output) / METRICS), job.planned
        return job.done, job.planned

    def manifest_path(self, job: Job) -> Path | None:
        return self.score_path(job)

    def score_path(self, job: Job) -> Path | None:
        path = Path(job.output) / SCORE
        return path if path.is_file() else None


KIND = TrainKind()

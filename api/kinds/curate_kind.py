"""`curate` jobs: the pipeline config of `curate run`, as JSON, run by `run_pipeline` in a worker.

Resumable by construction: the job's output folder and config never change between attempts, so a worker
that dies is followed by one that calls `run_pipeline` again, which redoes only shards without a
completion record. Progress is those records counted on disk against the plan's shard count.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.errors import FieldError
from api.kinds.base import JobKind, KindContext, Prepared, RunContext
from api.security import PathPolicy
from api.store import Job
from curate.config import PipelineConfig, parse_config, resolve_paths
from curate.errors import ConfigError
from curate.executors import Executor
from curate.shard_runner import STATE_DIR
from curate.storage import files_under, is_url, location

RUN_RECORD = "_state/run.json"
CONFIG = ("body", "config")


class CurateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executor: Executor = Field(
        default="local", description="local process pool, or Ray (the cluster the server was started with)"
    )
    workers: int = Field(default=1, ge=1, description="processes (local) or actors (ray) for this job")


def confine_pipeline(
    raw: dict[str, Any],
    model: PipelineConfig,
    policy: PathPolicy,
    default_output: Path | None,
    loc: tuple[str, ...] = CONFIG,
) -> dict[str, Any]:
    """The raw config with every path made absolute and checked against the data roots.

    The raw dict (not the model) is what gets stored, because stage entries only round-trip in their
    `- name: {params}` form."""
    confined = copy.deepcopy(raw)
    for index, spec in enumerate(model.inputs):
        confined["inputs"][index]["path"] = policy.confine_glob(spec.path, (*loc, "inputs", index, "path"))
    output = model.output or (str(default_output) if default_output else None)
    if output is None:
        raise FieldError((*loc, "output"), "required: the output folder of this run")
    confined["output"] = _resolved(policy.confine(output, (*loc, "output")))
    if model.dedup is not None and model.dedup.index is not None:
        confined["dedup"]["index"] = _resolved(policy.confine(model.dedup.index, (*loc, "dedup", "index")))
    return confined


def _resolved(path: str) -> str:
    """A local path with its symlinks resolved; an object-store URL as it is (objects have none)."""
    return path if is_url(path) else str(Path(path).resolve())


def load_pipeline(confined: dict[str, Any], policy: PathPolicy) -> PipelineConfig:
    """A stored (already confined) config back as the model `run_pipeline` takes; its path fields are
    read as at submission (relative to the first data root, confined), not against the process's cwd."""
    try:
        with policy.marked_fields():
            return resolve_paths(parse_config(confined), base=policy.base, out=None)
    except ConfigError as error:
        raise FieldError(CONFIG, str(error)) from None


def check_output_claim(config: PipelineConfig) -> None:
    """Refuse at submission what `run_pipeline` would refuse later: an output holding something else.

    The same config into the same output is allowed on purpose: it resumes (or no-ops) that run."""
    out = location(str(config.output))
    record = out / RUN_RECORD
    loc = (*CONFIG, "output")
    if record.is_file():
        previous = json.loads(record.read_text(encoding="utf-8")).get("config_hash", "")
        if previous != config.config_hash():
            raise FieldError(
                loc, f"{out} holds a run of a different config ({previous[:12]}); use another output"
            )
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):  # an empty prefix does not exist
        raise FieldError(loc, f"{out} exists and is not a curate output; choose an empty or new folder")


def plan_shards(config: PipelineConfig) -> int:
    """Shards of the run, found now so a glob matching nothing fails the submission, not the worker."""
    from curate.plan import build_plan

    try:
        return len(build_plan(config).tasks)
    except ConfigError as error:
        raise FieldError(CONFIG, str(error)) from None


def completed_shards(output: Path | str) -> int:
    return len(files_under(location(str(output)) / STATE_DIR, "*.json"))


def run_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the job list shows; the full manifest stays on disk and behind /manifest."""
    return {
        "totals": manifest["totals"],
        "domains": manifest["domains"],
        "wall_seconds": manifest["wall_seconds"],
        "shards": len(manifest["inputs"]),
        "config_hash": manifest["config_hash"],
    }


class CurateKind(JobKind):
    name = "curate"
    summary = "curate input shards into a corpus (the config of `curate run`)"
    Config = PipelineConfig
    Options = CurateOptions

    def prepare(
        self, job_id: str, config: dict[str, Any], options: dict[str, Any], ctx: KindContext
    ) -> Prepared:
        model, opts = self.validate(config, options, ctx.policy)
        assert isinstance(model, PipelineConfig) and isinstance(opts, CurateOptions)
        limit = ctx.settings.max_job_workers
        if opts.workers > limit:
            raise FieldError(
                ("body", "options", "workers"), f"at most {limit} workers per job on this server"
            )
        confined = confine_pipeline(config, model, ctx.policy, ctx.settings.jobs_output_root / job_id)
        pipeline = load_pipeline(confined, ctx.policy)
        check_output_claim(pipeline)
        planned = plan_shards(pipeline)
        locks = [confined["output"]] + (
            [confined["dedup"]["index"]] if confined.get("dedup", {}).get("index") else []
        )
        return Prepared(confined, opts.model_dump(), confined["output"], locks, planned)

    def recheck(self, job: Job, ctx: KindContext) -> None:
        model, _ = self.validate(job.config, job.options, ctx.policy)
        confine_pipeline(job.config, model, ctx.policy, None)

    def run(self, job: Job, ctx: RunContext) -> dict[str, Any]:
        from curate.run import run_pipeline

        pipeline = load_pipeline(job.config, ctx.policy)
        opts = CurateOptions.model_validate(job.options)
        ctx.progress(plan_shards(pipeline), completed_shards(job.output))
        address = ctx.settings.ray_address if opts.executor == "ray" else None
        manifest = run_pipeline(
            pipeline, opts.executor, opts.workers, address, progress=False, data_roots=ctx.policy.roots
        )
        ctx.log(f"curated {manifest['totals']} in {manifest['wall_seconds']}s")
        return run_summary(manifest)

    def progress(self, job: Job) -> tuple[int | None, int | None]:
        if job.state == "running":
            return min(completed_shards(job.output), job.planned or 0), job.planned
        return job.done, job.planned


KIND = CurateKind()

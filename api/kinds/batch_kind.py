"""`batch` jobs: one run of a schedule, created by the scheduler (never submitted by a client).

The run's config lists the exact shards it consumes. They are linked into a staging folder that mirrors
their layout under the input glob, so the curate run sees the same `source` names as a plain run over
the input location, and the pipeline (with the schedule's persistent dedup index) writes the version
folder. The consumed shards are recorded as processed in the same transaction that commits the version;
a worker that dies before that point is followed by one that resumes the same run into the same folder.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from api.kinds.base import JobKind, KindContext, Prepared, RunContext
from api.kinds.curate_kind import (
    CurateOptions,
    completed_shards,
    confine_pipeline,
    load_pipeline,
    run_summary,
)
from api.store import Job
from curate.config import PipelineConfig, glob_root
from curate.paths import PathParam


class BatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedule: str
    version: int
    pipeline: dict[str, Any]
    shards: list[dict[str, Any]]
    staging: PathParam
    mixture: dict[str, Any] | None = None


def stage_shards(config: BatchConfig) -> dict[str, Any]:
    """Link the run's shards under STAGING/<input name>/<path under the glob root> (idempotent) and
    return the pipeline reading them, writing the version folder."""
    original = PipelineConfig.model_validate(config.pipeline)
    staging = Path(config.staging)
    used: dict[int, dict[str, Any]] = {}
    for shard in config.shards:
        index = shard["input"]
        spec = original.inputs[index]
        name = spec.input_name(index)
        link = staging / name / Path(shard["path"]).relative_to(glob_root(spec.path))
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            os.symlink(shard["path"], link)
        used[index] = {**config.pipeline["inputs"][index], "name": name, "path": str(staging / name / "**")}
    pipeline = copy.deepcopy(config.pipeline)
    pipeline["inputs"] = [used[i] for i in sorted(used)]
    return pipeline


class BatchKind(JobKind):
    name = "batch"
    summary = "one run of a schedule: new shards into a new corpus version"
    Config = BatchConfig
    Options = CurateOptions
    submittable = False

    def prepare(
        self, job_id: str, config: dict[str, Any], options: dict[str, Any], ctx: KindContext
    ) -> Prepared:
        raise NotImplementedError("batch jobs are created by the scheduler (api.schedules.fire)")

    def recheck(self, job: Job, ctx: KindContext) -> None:
        config = BatchConfig.model_validate(job.config)
        pipeline = PipelineConfig.model_validate(config.pipeline)
        confine_pipeline(config.pipeline, pipeline, ctx.policy, None)
        for shard in config.shards:
            ctx.policy.check(Path(shard["path"]), ("config", "shards"))

    def run(self, job: Job, ctx: RunContext) -> dict[str, Any]:
        from curate.run import run_pipeline

        config = BatchConfig.model_validate(job.config)
        opts = CurateOptions.model_validate(job.options)
        staged = stage_shards(config)
        staged["output"] = job.output
        pipeline = load_pipeline(staged, ctx.policy)
        address = ctx.settings.ray_address if opts.executor == "ray" else None
        manifest = run_pipeline(
            pipeline, opts.executor, opts.workers, address, progress=False, data_roots=ctx.policy.roots
        )
        self._commit_version(job, config, ctx)
        result = {"version": config.version, **run_summary(manifest), "dedup": manifest.get("dedup")}
        ctx.log(f"version {config.version} committed: {manifest['totals']}")
        if config.mixture:
            try:
                result["mixture"] = self._rebuild_mixture(config, ctx)
            except Exception as error:
                message = (
                    f"corpus v{config.version:04d} is committed, but the mixture rebuild failed: {error}"
                )
                raise RuntimeError(message) from error
        return result

    def _commit_version(self, job: Job, config: BatchConfig, ctx: RunContext) -> None:
        assert ctx.store is not None
        with ctx.store.transaction() as con:
            ctx.store.record_processed(con, config.schedule, config.version, job.id, config.shards)
            ctx.store.add_event(
                config.schedule, "version_committed", None, job.id, f"v{config.version:04d}", con
            )

    def _rebuild_mixture(self, config: BatchConfig, ctx: RunContext) -> dict[str, Any]:
        """Every committed version of the schedule is a corpus of the mixture."""
        from api.kinds.mix_kind import mixture_summary
        from mixers.sampler import build_mixture
        from mixers.spec import parse_spec

        assert ctx.store is not None and config.mixture is not None
        root = Path(config.pipeline["output"])
        corpora = [str(root / f"v{v['version']:04d}") for v in ctx.store.versions(config.schedule)]
        mixture = config.mixture
        spec = parse_spec({**mixture["spec"], "corpora": corpora, "output": mixture["output"]})
        manifest = build_mixture(spec, mixture["output"], mixture["tokens"], echo=ctx.log)
        return {"output": mixture["output"], "corpora": len(corpora), **mixture_summary(manifest)}

    def progress(self, job: Job) -> tuple[int | None, int | None]:
        if job.state == "running":
            return min(completed_shards(job.output), job.planned or 0), job.planned
        return job.done, job.planned


KIND = BatchKind()

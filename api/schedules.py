"""Scheduled batch runs: a cron schedule turns newly arrived shards into a new corpus version.

A schedule names an input location (the pipeline's input globs), a corpus folder (the pipeline's
`output`, which receives `v0001/`, `v0002/`, ...), a persistent dedup index (`dedup.index`, required: a
batch must be deduplicated against everything emitted before) and optionally a mixture to rebuild
from all versions after each run.

Firing a schedule takes one transaction: it allocates the version number and inserts the run's job,
whose config lists the exact shards it consumes. The partial unique index on jobs(schedule) makes a
second active run of one schedule impossible; a shard counts as processed only once its version is
committed (see `batch_kind`), so a failed run leaves its shards for the next one.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.errors import FieldError, from_validation
from api.kinds import is_available
from api.kinds.base import KindContext
from api.kinds.curate_kind import CurateOptions, confine_pipeline
from api.store import Job, JobStore, Schedule, new_job_id
from curate.config import PipelineConfig, expand_input
from curate.errors import ConfigError
from curate.paths import PathParam

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
BODY = ("body",)


class MixtureRebuild(BaseModel):
    """A mixture rebuilt after every run from all the schedule's corpus versions."""

    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="a mixture spec without `corpora` and `output`")
    output: PathParam = Field(description="the mixture folder, replaced by each rebuild")
    tokens: bool = False


class ScheduleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    cron: str = Field(description="5 fields (minute ... weekday), or 6 with seconds last; UTC")
    missed: Literal["skip", "catch_up_once"] = Field(
        default="skip", description="runs missed while the service was down: skip them, or run once on start"
    )
    pipeline: dict[str, Any] = Field(
        description="a curate config: `inputs` where shards arrive, `output` the corpus folder, `dedup.index`"
    )
    options: CurateOptions = CurateOptions()
    mixture: MixtureRebuild | None = None


def prepare_schedule(raw: Any, ctx: KindContext, loc: tuple[Any, ...] = BODY) -> dict[str, Any]:
    """Validate a schedule and confine its paths; returns the spec as stored. Raises 422-shaped errors."""
    with ctx.policy.marked_fields():
        return _validated_schedule(raw, ctx, loc)


def _validated_schedule(raw: Any, ctx: KindContext, loc: tuple[Any, ...]) -> dict[str, Any]:
    try:
        spec = ScheduleSpec.model_validate(raw)
    except ValidationError as error:
        raise from_validation(error, *loc) from None
    if not croniter.is_valid(spec.cron):
        raise FieldError((*loc, "cron"), f"{spec.cron!r} is not a cron expression (e.g. '0 * * * *')")
    try:
        pipeline = PipelineConfig.model_validate(spec.pipeline)
    except ValidationError as error:
        raise from_validation(error, *loc, "pipeline") from None
    if pipeline.output is None:
        raise FieldError(
            (*loc, "pipeline", "output"), "required: the folder that receives the corpus versions"
        )
    if pipeline.dedup is None or pipeline.dedup.index is None:
        raise FieldError((*loc, "pipeline", "dedup", "index"), "required: batches dedup against this index")
    if spec.options.workers > ctx.settings.max_job_workers:
        raise FieldError(
            (*loc, "options", "workers"), f"at most {ctx.settings.max_job_workers} workers per job"
        )
    stored = spec.model_dump(mode="json")
    named = _named_inputs(spec.pipeline, pipeline)
    stored["pipeline"] = confine_pipeline(named, pipeline, ctx.policy, None, (*loc, "pipeline"))
    if spec.mixture is not None:
        stored["mixture"] = _prepare_mixture(spec.mixture, stored["pipeline"]["output"], ctx, loc)
    return stored


def _named_inputs(raw: dict[str, Any], pipeline: PipelineConfig) -> dict[str, Any]:
    """Fix each input's name now: a batch drops inputs with no new shard, which would renumber the rest."""
    named = dict(raw)
    named["inputs"] = [{**raw["inputs"][i], "name": s.input_name(i)} for i, s in enumerate(pipeline.inputs)]
    return named


def _prepare_mixture(
    mixture: MixtureRebuild, corpus_root: str, ctx: KindContext, loc: tuple
) -> dict[str, Any]:
    where = (*loc, "mixture")
    if not is_available("mix"):
        raise FieldError(where, "job kind mix is not available in this build")
    from mixers.spec import MixtureSpec

    for key in ("corpora", "output"):
        if key in mixture.spec:
            raise FieldError((*where, "spec", key), "set by the schedule (its corpus versions); remove it")
    try:
        MixtureSpec.model_validate({**mixture.spec, "corpora": [corpus_root]})
    except ValidationError as error:
        raise from_validation(error, *where, "spec") from None
    output = ctx.policy.confine(mixture.output, (*where, "output"))
    return {**mixture.model_dump(mode="json"), "output": str(Path(output).resolve())}


# -- firing ------------------------------------------------------------------------------------------------


@dataclass
class FireOutcome:
    event: str  # started | nothing_new | skipped_overlap | error
    job_id: str | None = None
    detail: str | None = None


def new_shards(spec: dict[str, Any], processed: set[str], ctx: KindContext) -> list[dict[str, Any]]:
    """Files the input globs match now that no committed run of this schedule consumed."""
    with ctx.policy.marked_fields():
        pipeline = PipelineConfig.model_validate(spec["pipeline"])
    shards = []
    for index, input_spec in enumerate(pipeline.inputs):
        try:
            matches = expand_input(input_spec, index)
        except ConfigError:
            continue  # nothing has arrived for this input yet
        for path, _fmt in matches:
            ctx.policy.check(path, ("pipeline", "inputs", index, "path"))
            if str(path) not in processed:
                shards.append({"path": str(path), "size": path.stat().st_size, "input": index})
    return shards


def version_dir(spec: dict[str, Any], version: int) -> Path:
    return Path(spec["pipeline"]["output"]) / f"v{version:04d}"


def staging_dir(spec: dict[str, Any], version: int) -> Path:
    return Path(spec["pipeline"]["output"]) / "_inputs" / f"v{version:04d}"


def fire(
    store: JobStore, ctx: KindContext, schedule: Schedule, fire_time: float | None, reason: str
) -> FireOutcome:
    """Start one run of the schedule if it has new shards and no run is active; record what happened."""
    name = schedule.name
    active = store.active_run(name)
    if active is not None:
        return _record(
            store, name, fire_time, FireOutcome("skipped_overlap", active, f"{reason}: run {active} active")
        )
    try:
        shards = new_shards(schedule.spec, store.processed_paths(name), ctx)
    except (FieldError, ConfigError, OSError) as error:
        return _record(store, name, fire_time, FireOutcome("error", None, f"{reason}: {error}"))
    if not shards:
        return _record(store, name, fire_time, FireOutcome("nothing_new", None, reason))
    try:
        with store.transaction() as con:
            job = _insert_run(store, con, schedule, shards)
            store.add_event(name, "started", fire_time, job.id, f"{reason}: {len(shards)} new shard(s)", con)
    except sqlite3.IntegrityError:
        active = store.active_run(name)
        return _record(
            store, name, fire_time, FireOutcome("skipped_overlap", active, f"{reason}: run active")
        )
    return FireOutcome("started", job.id, f"{len(shards)} new shard(s)")


def _insert_run(store: JobStore, con: sqlite3.Connection, schedule: Schedule, shards: list[dict]) -> Job:
    version = con.execute("SELECT next_version FROM schedules WHERE name = ?", (schedule.name,)).fetchone()[0]
    con.execute("UPDATE schedules SET next_version = next_version + 1 WHERE name = ?", (schedule.name,))
    spec = schedule.spec
    output = str(version_dir(spec, version))
    locks = [output, spec["pipeline"]["dedup"]["index"]]
    if spec.get("mixture"):
        locks.append(spec["mixture"]["output"])
    config = {
        "schedule": schedule.name,
        "version": version,
        "pipeline": spec["pipeline"],
        "shards": shards,
        "staging": str(staging_dir(spec, version)),
        "mixture": spec.get("mixture"),
    }
    job = Job(new_job_id(), "batch", "queued", config, spec["options"], output, locks, schedule.name)
    job.planned = len(shards)
    store.insert_job(job, con)
    return job


def _record(store: JobStore, name: str, fire_time: float | None, outcome: FireOutcome) -> FireOutcome:
    store.add_event(name, outcome.event, fire_time, outcome.job_id, outcome.detail)
    return outcome


# -- when to fire ------------------------------------------------------------------------------------------


def due_times(cron: str, after: float, now: float) -> list[float]:
    """Cron times in (after, now], oldest first (bounded: a long outage is summarised, not replayed)."""
    it = croniter(cron, datetime.fromtimestamp(after, UTC))
    times: list[float] = []
    while len(times) < 1000:
        t = it.get_next(float)
        if t > now:
            break
        times.append(t)
    return times[-2:] if len(times) > 2 else times


def decide(
    cron: str, missed_policy: str, last_fire: float, now: float, grace: float
) -> tuple[float | None, str]:
    """(time to fire for or None, why): on time, catch-up of missed runs, or missed runs skipped."""
    due = due_times(cron, last_fire, now)
    if not due:
        return None, "not_due"
    latest = due[-1]
    if now - latest <= grace:
        return latest, "cron"
    if missed_policy == "catch_up_once":
        return latest, "catch_up"
    return latest, "missed"


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def next_fire(cron: str, after: float | None = None) -> float:
    return croniter(cron, datetime.fromtimestamp(after or time.time(), UTC)).get_next(float)

"""Request and response models of the REST API: what /docs shows and what clients can rely on."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.kinds import get_kind
from api.schedules import iso, next_fire
from api.store import Job, Schedule


class JobRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "curate",
                    "config": {
                        "inputs": [{"path": "shards/*.jsonl.gz", "name": "cc"}],
                        "stages": [{"normalize": {}}, {"tag": {"domain": {"default": "web"}}}],
                        "output": "corpora/cc-2024",
                    },
                    "options": {"executor": "local", "workers": 1},
                }
            ]
        },
    )

    kind: str = Field(description="a registered job kind: curate, mix, train, mixsearch (see /v1/kinds)")
    config: dict[str, Any] = Field(description="the kind's config, the same schema as the CLI's YAML")
    options: dict[str, Any] = Field(
        default_factory=dict, description="how to run it (curate: executor, workers)"
    )


class Progress(BaseModel):
    done: int | None = Field(description="completed units: shards (curate, batch) or steps (train)")
    planned: int | None
    fraction: float | None


class JobView(BaseModel):
    id: str
    kind: str
    state: str
    progress: Progress
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    attempts: int = Field(description="worker processes started for this job (a resumed job has more than 1)")
    crashes: int = Field(description="attempts whose worker died without recording an outcome")
    cancel_requested: bool
    worker_pid: int | None
    output: str
    schedule: str | None
    error: str | None
    result: dict[str, Any] | None
    config: dict[str, Any]
    options: dict[str, Any]

    @classmethod
    def of(cls, job: Job, progress: tuple[int | None, int | None] | None = None) -> JobView:
        """`progress` as `job_progress(job)` gave it (read now when not given)."""
        done, planned = job_progress(job) if progress is None else progress
        fraction = round(done / planned, 4) if done is not None and planned else None
        if job.state == "succeeded" and fraction is None:
            fraction = 1.0
        return cls(
            id=job.id,
            kind=job.kind,
            state=job.state,
            progress=Progress(done=done, planned=planned, fraction=fraction),
            created_at=iso(job.created_at),
            started_at=iso(job.started_at),
            finished_at=iso(job.finished_at),
            attempts=job.attempts,
            crashes=job.crashes,
            cancel_requested=job.cancel_requested,
            worker_pid=job.worker_pid,
            output=job.output,
            schedule=job.schedule,
            error=job.error,
            result=job.result,
            config=job.config,
            options=job.options,
        )


def job_progress(job: Job) -> tuple[int | None, int | None]:
    """(done, planned): a running job's read from its output on disk by its kind, else as recorded."""
    try:
        return get_kind(job.kind).progress(job)
    except LookupError:
        return job.done, job.planned


class JobList(BaseModel):
    jobs: list[JobView]
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(description="pass as `offset` for the next page; null on the last page")


class ScheduleView(BaseModel):
    name: str
    cron: str
    missed: str
    origin: str = Field(description="api (POST /v1/schedules) or file (the schedules file)")
    created_at: str | None
    last_fire: str | None = Field(description="the latest cron time considered (fired, skipped or missed)")
    last_run: str | None = Field(description="when the latest run started (cron, catch-up or manual)")
    next_fire: str | None
    active_job: str | None
    versions: list[dict[str, Any]]
    events: list[dict[str, Any]]
    spec: dict[str, Any]

    @classmethod
    def of(
        cls,
        schedule: Schedule,
        active: str | None,
        versions: list[dict[str, Any]],
        events: list[dict[str, Any]],
        last_run: float | None = None,
    ) -> ScheduleView:
        spec = schedule.spec
        return cls(
            name=schedule.name,
            cron=spec["cron"],
            missed=spec["missed"],
            origin=schedule.origin,
            created_at=iso(schedule.created_at),
            last_fire=iso(schedule.last_fire),
            last_run=iso(last_run),
            next_fire=iso(next_fire(spec["cron"], max(schedule.last_fire, time.time()))),
            active_job=active,
            versions=versions,
            events=[{**e, "at": iso(e["at"]), "fire_time": iso(e["fire_time"])} for e in events],
            spec=spec,
        )


class RunOutcome(BaseModel):
    event: str = Field(description="started | nothing_new | skipped_overlap | error")
    job_id: str | None
    detail: str | None

"""What a job kind is: a config model, a way to prepare a submission, a run function and a progress probe.

The server only ever calls `prepare` (validate, confine paths, decide the output folder and locks); the
worker subprocess calls `recheck` and `run`. Nothing in a request can name code to execute: the kind is
looked up in the registry, and its config is data validated by the kind's own pydantic model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from api.errors import from_validation
from api.security import PathPolicy
from api.settings import ServiceSettings
from api.store import Job, JobStore
from curate.storage import Location, location


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class Prepared:
    """A validated submission, ready to be stored: the worker runs exactly this."""

    config: dict[str, Any]
    options: dict[str, Any]
    output: str
    locks: list[str]
    planned: int | None = None


@dataclass
class KindContext:
    settings: ServiceSettings
    policy: PathPolicy

    @classmethod
    def of(cls, settings: ServiceSettings) -> KindContext:
        return cls(settings, PathPolicy(settings.data_roots, [settings.state_dir]))


@dataclass
class RunContext(KindContext):
    store: JobStore | None = None
    log: Callable[[str], None] = print
    progress: Callable[[int | None, int | None], None] = field(default=lambda planned, done: None)


class JobKind(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    Options: ClassVar[type[BaseModel]] = NoOptions
    submittable: ClassVar[bool] = True  # False: created by the service itself (scheduled batch runs)

    def validate(
        self, config: dict[str, Any], options: dict[str, Any], policy: PathPolicy
    ) -> tuple[BaseModel, BaseModel]:
        """Pydantic models of both parts, errors located under `config.` / `options.` in the request;
        every marked path field of the config is confined to the data roots as it is validated."""
        try:
            with policy.marked_fields():
                model = self.Config.model_validate(config)
        except ValidationError as error:
            raise from_validation(error, "body", "config") from None
        try:
            opts = self.Options.model_validate(options)
        except ValidationError as error:
            raise from_validation(error, "body", "options") from None
        return model, opts

    @abstractmethod
    def prepare(
        self, job_id: str, config: dict[str, Any], options: dict[str, Any], ctx: KindContext
    ) -> Prepared:
        """Validate, confine every path to the data roots, and fix the output folder; raise FieldError."""

    def recheck(self, job: Job, ctx: KindContext) -> None:
        """Confine the paths again just before running: the file system may have changed since."""
        self.prepare(job.id, job.config, job.options, ctx)

    @abstractmethod
    def run(self, job: Job, ctx: RunContext) -> dict[str, Any]:
        """Do the work (resumable: a second call after a crash continues); return a JSON summary."""

    def progress(self, job: Job) -> tuple[int | None, int | None]:
        """(done, planned) units of work, read from the job's output on disk."""
        return job.done, job.planned

    def manifest_path(self, job: Job) -> Location | None:
        path = location(job.output) / "manifest.json"
        return path if path.is_file() else None

    def score_path(self, job: Job) -> Path | None:
        return None

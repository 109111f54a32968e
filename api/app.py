"""The FastAPI application: routes, auth, error shapes, and the lifespan that runs the pool and the cron.

`create_app(settings)` is all a test or `serve()` needs. The routes are thin: validation lives in the job
kinds and `api.schedules`, state in `api.store`, processes in `api.supervisor`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse

from api.errors import Conflict, FieldError, RequestErrors
from api.kinds import KindUnavailable, UnknownKind, get_kind, kinds_status, submittable_kind
from api.kinds.base import KindContext
from api.scheduler import Scheduler, load_schedules_file
from api.schedules import ScheduleSpec, fire, prepare_schedule
from api.security import BearerAuth, BodySizeLimit, RequestOrigin
from api.settings import ServiceSettings, write_worker_settings
from api.store import STATES, TERMINAL_STATES, Job, JobStore, new_job_id
from api.supervisor import Supervisor, job_log_path
from api.views import JobList, JobRequest, JobView, RunOutcome, ScheduleView, job_progress
from curate.inspect import inspect_output

STATIC = Path(__file__).parent / "static"
DASHBOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
MAX_LOG_BYTES = 1 << 20
PROGRESS_TTL = 1.0  # seconds a running job's progress (a listing of its output) is shared by all pollers


class Service:
    """What the routes share: settings, the store, and the two background threads."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.store = JobStore(settings.db_path)
        self.ctx = KindContext.of(settings)
        self.supervisor = Supervisor(settings, self.store)
        self.scheduler = Scheduler(settings, self.store, on_started=self.supervisor.poke)
        self._progress: dict[str, tuple[float, tuple[int | None, int | None]]] = {}

    def start(self) -> None:
        write_worker_settings(self.settings)
        if self.settings.schedules_file is not None:
            load_schedules_file(self.settings.schedules_file, self.store, self.ctx)
        self.supervisor.start()
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
        self.supervisor.stop()

    def job(self, job_id: str) -> Job:
        job = self.store.get_job(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job

    async def progress(self, job: Job) -> tuple[int | None, int | None]:
        """A running job's progress lists its output (on disk or on a store): done in a worker thread, at
        most once per PROGRESS_TTL per job, however many clients poll it. Other jobs' is as recorded."""
        if job.state != "running":
            self._progress.pop(job.id, None)
            return job_progress(job)
        cached = self._progress.get(job.id)
        if cached is not None and time.monotonic() - cached[0] < PROGRESS_TTL:
            return cached[1]
        value = await run_in_threadpool(job_progress, job)
        self._progress[job.id] = (time.monotonic(), value)
        return value


def create_app(settings: ServiceSettings, background: bool = True) -> FastAPI:
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if background:
            service.start()
        yield
        if background:
            service.stop()

    app = FastAPI(
        title="curate service",
        version="1",
        summary="Curation jobs, scheduled batch runs and a dashboard over the curate pipeline.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    _add_offline_docs(app)
    app.state.service = service
    # the last added runs first: origin and host, then the token, then the body size
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(BearerAuth, token=settings.token, prefix="/v1")
    app.add_middleware(RequestOrigin, loopback_hosts_only=settings.token is None)
    _add_error_handlers(app)
    app.include_router(_jobs_router(service), prefix="/v1")
    app.include_router(_schedules_router(service), prefix="/v1")
    app.include_router(_pages_router(service))
    return app


def _add_offline_docs(app: FastAPI) -> None:
    """/docs from the Swagger UI files the swagger-ui-bundle wheel ships: FastAPI's default page loads
    them from a CDN, which a service on a closed network cannot reach."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs-static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="curate service - API",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon-32x32.png",
        )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FieldError)
    async def field_error(request: Request, error: FieldError) -> JSONResponse:
        return JSONResponse({"detail": error.detail()}, status_code=422)

    @app.exception_handler(RequestErrors)
    async def request_errors(request: Request, error: RequestErrors) -> JSONResponse:
        return JSONResponse({"detail": error.errors}, status_code=422)

    @app.exception_handler(UnknownKind)
    @app.exception_handler(KindUnavailable)
    async def bad_kind(request: Request, error: LookupError) -> JSONResponse:
        detail = [{"loc": ["body", "kind"], "msg": str(error), "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(Conflict)
    async def conflict(request: Request, error: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)


def _jobs_router(service: Service) -> APIRouter:
    router = APIRouter(tags=["jobs"])

    @router.get("/kinds")
    def list_kinds() -> list[dict[str, Any]]:
        """Registered job kinds and whether this build provides them."""
        return kinds_status()

    @router.post("/jobs", status_code=201)
    def submit_job(request: JobRequest) -> JobView:
        """Validate and queue a job. 422 names the bad field (`detail[].loc`); nothing runs before that."""
        kind = submittable_kind(request.kind)
        job_id = new_job_id()
        try:
            prepared = kind.prepare(job_id, request.config, request.options, service.ctx)
        except OSError as error:  # e.g. a permission error while expanding a glob
            raise FieldError(("body", "config"), f"cannot use these paths: {error}") from None
        job = Job(
            job_id, kind.name, "queued", prepared.config, prepared.options, prepared.output, prepared.locks
        )
        job.planned = prepared.planned
        service.store.insert_job(job)
        service.supervisor.poke()
        return JobView.of(job)

    @router.get("/jobs")
    def list_jobs(
        state: Annotated[str | None, Query(pattern="^(" + "|".join(STATES) + ")$")] = None,
        schedule: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    ) -> JobList:
        """Newest first; filter by state or schedule; page with limit/offset."""
        jobs, total = service.store.list_jobs(state, limit, offset, schedule)
        next_offset = offset + len(jobs) if offset + len(jobs) < total else None
        return JobList(
            jobs=[JobView.of(j) for j in jobs],
            total=total,
            limit=limit,
            offset=offset,
            next_offset=next_offset,
        )

    @router.get("/jobs/{job_id}", response_model=JobView)
    async def show_job(job_id: str) -> Response:
        """What clients poll while a job runs, so it is kept cheap: async (no thread hand-offs), one indexed
        SQLite read, progress shared by all pollers (`Service.progress`), JSON rendered by pydantic-core."""
        job = service.job(job_id)
        view = JobView.of(job, await service.progress(job))
        return Response(view.model_dump_json(), media_type="application/json")

    @router.post("/jobs/{job_id}/cancel", status_code=202)
    def cancel_job(job_id: str) -> JobView:
        """Queued: cancelled now. Running: its workers are stopped within seconds; completed work is kept
        and counted in `result.completed`. Finished: 409."""
        job = service.job(job_id)
        if job.state in TERMINAL_STATES:
            raise Conflict(f"job {job_id} is already {job.state}")
        updated = service.store.request_cancel(job_id)
        service.supervisor.poke()
        assert updated is not None
        return JobView.of(updated)

    @router.get("/jobs/{job_id}/manifest")
    def job_manifest(job_id: str) -> JSONResponse:
        """The run's manifest.json (curate, batch, mix) or result.json (train), once written."""
        job = service.job(job_id)
        path = get_kind(job.kind).manifest_path(job)
        if path is None:
            raise HTTPException(404, f"job {job_id} ({job.state}) has no manifest yet")
        return JSONResponse(json.loads(path.read_text(encoding="utf-8")))

    @lru_cache(maxsize=32)
    def inspection(job_id: str, output: str, samples: int) -> dict[str, Any]:
        """A succeeded run's files never change, so the dashboard's polls cost one scan per job."""
        return inspect_output(output, samples)

    @router.get("/jobs/{job_id}/inspect")
    def job_inspect(
        job_id: str, samples: Annotated[int, Query(ge=0, le=20, description="kept documents to sample")] = 3
    ) -> JSONResponse:
        """A succeeded curate or batch run as `curate inspect --json` reads it: the funnel with CPU seconds
        per stage, domains, reject reasons with sample documents, score histograms by domain."""
        job = service.job(job_id)
        if job.kind not in INSPECTABLE_KINDS or job.state != "succeeded":
            raise HTTPException(404, f"job {job_id} ({job.kind}, {job.state}) is not a succeeded curate run")
        return JSONResponse(inspection(job.id, job.output, samples))

    @router.get("/jobs/{job_id}/score")
    def job_score(job_id: str) -> JSONResponse:
        """A train job's result.json: per-domain bits per byte and the mixture score."""
        job = service.job(job_id)
        path = get_kind(job.kind).score_path(job)
        if path is None:
            raise HTTPException(404, f"job {job_id} has no result.json")
        return JSONResponse(json.loads(path.read_text(encoding="utf-8")))

    @router.get("/jobs/{job_id}/logs", response_class=PlainTextResponse)
    def job_logs(
        job_id: str,
        offset: Annotated[
            int, Query(ge=0, le=2**62, description="byte offset to start at (X-Next-Offset)")
        ] = 0,
        tail: Annotated[int | None, Query(ge=1, le=100_000, description="only the last N lines")] = None,
    ) -> PlainTextResponse:
        """The job's log (service notes and the workers' output), at most 1 MiB per call."""
        service.job(job_id)
        text, next_offset = read_log(job_log_path(service.settings, job_id), offset, tail)
        return PlainTextResponse(text, headers={"X-Next-Offset": str(next_offset)})

    return router


INSPECTABLE_KINDS = ("curate", "batch")


def read_log(path: Path, offset: int, tail: int | None) -> tuple[str, int]:
    if not path.is_file():
        return "", 0
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        start = min(offset, size) if tail is None else max(0, size - MAX_LOG_BYTES)
        handle.seek(start)
        data = handle.read(MAX_LOG_BYTES)
    text = data.decode("utf-8", errors="replace")
    if tail is not None:
        text = "".join(text.splitlines(keepends=True)[-tail:])
    return text, start + len(data)


def _schedules_router(service: Service) -> APIRouter:
    router = APIRouter(tags=["schedules"])
    store = service.store

    def view(name: str) -> ScheduleView:
        schedule = store.get_schedule(name)
        if schedule is None:
            raise HTTPException(404, f"no schedule {name}")
        events = store.events(name, 20)
        last_run = store.last_event_at(name, "started")
        return ScheduleView.of(schedule, store.active_run(name), store.versions(name), events, last_run)

    @router.post("/schedules", status_code=201)
    def create_schedule(body: ScheduleSpec) -> ScheduleView:
        """A cron schedule of batch runs (see the README). 409 if the name exists."""
        try:
            spec = prepare_schedule(body.model_dump(mode="json", exclude_unset=True), service.ctx)
        except OSError as error:
            raise FieldError(("body", "pipeline"), f"cannot use these paths: {error}") from None
        if store.get_schedule(spec["name"]) is not None:
            raise Conflict(f"schedule {spec['name']} exists; delete it first or choose another name")
        store.upsert_schedule(spec["name"], spec, "api", time.time())
        return view(spec["name"])

    @router.get("/schedules")
    def list_schedules() -> list[ScheduleView]:
        return [view(s.name) for s in store.list_schedules()]

    @router.get("/schedules/{name}")
    def show_schedule(name: str) -> ScheduleView:
        return view(name)

    @router.delete("/schedules/{name}", status_code=204)
    def delete_schedule(name: str) -> Response:
        """Stop scheduling; corpus versions stay on disk and an active run finishes."""
        if not store.delete_schedule(name):
            raise HTTPException(404, f"no schedule {name}")
        return Response(status_code=204)

    @router.post("/schedules/{name}/run", status_code=202)
    def run_schedule(name: str) -> RunOutcome:
        """Run now (new shards only). 409 while a run of this schedule is active."""
        schedule = store.get_schedule(name)
        if schedule is None:
            raise HTTPException(404, f"no schedule {name}")
        outcome = fire(store, service.ctx, schedule, None, "manual")
        if outcome.event == "skipped_overlap":
            raise Conflict(f"schedule {name} has an active run ({outcome.job_id}); try again when it ends")
        service.supervisor.poke()
        return RunOutcome(event=outcome.event, job_id=outcome.job_id, detail=outcome.detail)

    return router


def _pages_router(service: Service) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz", include_in_schema=True, tags=["service"])
    def healthz() -> dict[str, Any]:
        """Liveness, without auth: says nothing about jobs."""
        return {"status": "ok"}

    @router.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    @router.get("/dashboard")
    def dashboard() -> FileResponse:
        """Static page; its data comes from /v1 with the token the user enters (kept in the tab only)."""
        return _static("dashboard.html", "text/html")

    @router.get("/static/{name}")
    def static(name: str) -> FileResponse:
        types = {".js": "text/javascript", ".css": "text/css"}
        suffix = Path(name).suffix
        if suffix not in types or "/" in name:
            raise HTTPException(404)
        return _static(name, types[suffix])

    return router


def _static(name: str, media_type: str) -> FileResponse:
    path = STATIC / name
    if not path.is_file():
        raise HTTPException(404)
    headers = {
        "Content-Security-Policy": DASHBOARD_CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    return FileResponse(path, media_type=media_type, headers=headers)

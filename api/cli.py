"""Typer commands for `curate serve`, `curate jobs ...` and `curate schedules ...` (client side via httpx).

The CLI root (api/main.py) wires them in. Every client command takes --url (default $CURATE_API_URL or
http://127.0.0.1:8000) and --token (default $CURATE_API_TOKEN or the file in $CURATE_API_TOKEN_FILE).
Errors print one line; the exit code says which kind, so a script can tell them apart (EXIT_CODES).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from api.client import ApiClient, ApiError, read_document
from api.kinds import REGISTRY
from api.store import STATES
from curate.executors import Executor

# Choices typer checks and lists in --help, from the same tables the service validates against.
JobKindName = StrEnum("JobKindName", [(name, name) for name, entry in REGISTRY.items() if entry.submittable])
DEFAULT_KIND = JobKindName("curate")
JobStateName = StrEnum("JobStateName", [(state, state) for state in STATES])


Url = Annotated[
    str | None, typer.Option(help="service URL (default $CURATE_API_URL or http://127.0.0.1:8000)")
]
Token = Annotated[
    str | None, typer.Option(help="bearer token (default $CURATE_API_TOKEN / $CURATE_API_TOKEN_FILE)")
]


# A rejected request (400/409/422) is a user error like a bad config: 2. The others get their own code, so a
# script retries an unreachable service or a 5xx, but not a wrong token or a missing job.
EXIT_UNREACHABLE = 3
EXIT_AUTH = 4
EXIT_NOT_FOUND = 5
EXIT_SERVER = 6
EXIT_TIMEOUT = 7
EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 a waited-for job did not succeed; 2 a rejected request or bad input; "
    f"{EXIT_UNREACHABLE} service unreachable; {EXIT_AUTH} token missing or wrong (401/403); "
    f"{EXIT_NOT_FOUND} no such job or schedule (404); {EXIT_SERVER} server error (5xx); "
    f"{EXIT_TIMEOUT} timed out waiting."
)

jobs_app = typer.Typer(
    help=f"Submit and watch jobs on a curate service. {EXIT_CODES_HELP}", no_args_is_help=True
)
schedules_app = typer.Typer(
    help=f"Cron schedules of batch runs on a curate service. {EXIT_CODES_HELP}", no_args_is_help=True
)


def exit_code(error: ApiError | TimeoutError) -> int:
    if isinstance(error, TimeoutError):
        return EXIT_TIMEOUT
    if error.status == 0:
        return EXIT_UNREACHABLE
    if error.status in (401, 403):
        return EXIT_AUTH
    if error.status == 404:
        return EXIT_NOT_FOUND
    return EXIT_SERVER if error.status >= 500 else 2


def one_line_errors(command: Callable[..., None]) -> Callable[..., None]:
    """API and connection errors as one `error: ...` line and the exit code of their kind."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except (ApiError, TimeoutError) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(exit_code(error)) from None

    return wrapper


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def progress_text(job: dict[str, Any]) -> str:
    progress = job["progress"]
    if progress["planned"]:
        return f"{progress['done'] or 0}/{progress['planned']}"
    return "-"


def print_jobs(jobs: list[dict[str, Any]]) -> None:
    """Plain aligned columns (not a box table): ids stay whole and the output greps and pipes well."""
    typer.echo(f"{'id':<26} {'kind':<9} {'state':<10} {'progress':>9}  {'created':<25} error")
    for job in jobs:
        created = job["created_at"] or ""
        error = job["error"] or ""
        head = f"{job['id']:<26} {job['kind']:<9} {job['state']:<10} {progress_text(job):>9}"
        typer.echo(f"{head}  {created:<25} {error}".rstrip())


@jobs_app.command("submit")
@one_line_errors
def jobs_submit(
    config: Annotated[
        Path, typer.Argument(help="the job's config: YAML or JSON (paths relative to the data root)")
    ],
    kind: Annotated[JobKindName, typer.Option(help="what the job runs")] = DEFAULT_KIND,
    executor: Annotated[Executor | None, typer.Option(help="curate jobs: the executor")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="curate jobs: processes or actors")] = None,
    wait: Annotated[bool, typer.Option(help="wait until the job ends, then print it")] = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Submit a job; prints its id (or, with --wait, the finished job as JSON; exit 1 unless it succeeded)."""
    chosen = {"executor": executor, "workers": workers}
    options = {k: v for k, v in chosen.items() if v is not None}
    with ApiClient(url, token) as client:
        job = client.submit_job(kind.value, read_document(config), options)
        if not wait:
            typer.echo(job["id"])
            return
        job = client.wait_job(job["id"])
        echo_json(job)
        if job["state"] != "succeeded":
            raise typer.Exit(1)


@jobs_app.command("list")
@one_line_errors
def jobs_list(
    state: Annotated[JobStateName | None, typer.Option(help="only jobs in this state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print the page as JSON")] = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Jobs, newest first, as a table (or JSON)."""
    with ApiClient(url, token) as client:
        page = client.list_jobs(state.value if state else None, limit, offset)
    if as_json:
        echo_json(page)
    else:
        print_jobs(page["jobs"])
        if page["next_offset"] is not None:
            typer.echo(f"... {page['total']} jobs; next page: --offset {page['next_offset']}")


@jobs_app.command("show")
@one_line_errors
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="the job id")],
    manifest: Annotated[bool, typer.Option(help="print the run's manifest instead")] = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """A job's state, progress, counts and error as JSON."""
    with ApiClient(url, token) as client:
        echo_json(client.job_manifest(job_id) if manifest else client.show_job(job_id))


@jobs_app.command("cancel")
@one_line_errors
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="the job id")],
    wait: Annotated[bool, typer.Option(help="wait until it has stopped")] = True,
    url: Url = None,
    token: Token = None,
) -> None:
    """Cancel a job: its workers stop within seconds; completed shards are kept and reported."""
    with ApiClient(url, token) as client:
        job = client.cancel_job(job_id)
        if wait:
            job = client.wait_job(job_id, timeout=120)
    typer.echo(f"{job['id']}: {job['state']} ({progress_text(job)} done)")


@jobs_app.command("logs")
@one_line_errors
def jobs_logs(
    job_id: Annotated[str, typer.Argument(help="the job id")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the job ends")] = False,
    tail: Annotated[int | None, typer.Option(min=1, help="only the last N lines")] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """A job's log: the service's notes (attempts, resumes, cancel) and the workers' output."""
    with ApiClient(url, token) as client:
        if follow:
            for text in client.follow_logs(job_id):
                typer.echo(text, nl=False)
        else:
            typer.echo(client.job_logs(job_id, tail=tail)[0], nl=False)


@schedules_app.command("list")
@one_line_errors
def schedules_list(
    url: Url = None,
    token: Token = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the schedules as JSON")] = False,
) -> None:
    """Schedules with their cron, last and next fire time, versions and active run."""
    with ApiClient(url, token) as client:
        schedules = client.list_schedules()
    if as_json:
        echo_json(schedules)
        return
    typer.echo(f"{'name':<20} {'cron':<16} {'missed':<14} {'next fire':<25} versions  active run")
    for s in schedules:
        line = (
            f"{s['name']:<20} {s['cron']:<16} {s['missed']:<14} {s['next_fire'] or '':<25} "
            f"{len(s['versions']):>8}  {s['active_job'] or ''}"
        )
        typer.echo(line.rstrip())


@schedules_app.command("create")
@one_line_errors
def schedules_create(
    spec: Annotated[
        Path, typer.Argument(help="the schedule: YAML or JSON (name, cron, missed, pipeline, ...)")
    ],
    url: Url = None,
    token: Token = None,
) -> None:
    """Create a schedule from a file; prints its next fire time."""
    with ApiClient(url, token) as client:
        created = client.create_schedule(read_document(spec))
    typer.echo(f"{created['name']}: next run {created['next_fire']}")


@schedules_app.command("show")
@one_line_errors
def schedules_show(name: str, url: Url = None, token: Token = None) -> None:
    """A schedule with its versions and recent events, as JSON."""
    with ApiClient(url, token) as client:
        echo_json(client.show_schedule(name))


@schedules_app.command("run")
@one_line_errors
def schedules_run(name: str, url: Url = None, token: Token = None) -> None:
    """Run a schedule now (new shards only); refused while one of its runs is active."""
    with ApiClient(url, token) as client:
        outcome = client.run_schedule(name)
    typer.echo(f"{outcome['event']}: {outcome['job_id'] or ''} {outcome['detail'] or ''}".rstrip())


@schedules_app.command("delete")
@one_line_errors
def schedules_delete(name: str, url: Url = None, token: Token = None) -> None:
    """Delete a schedule; its corpus versions stay on disk."""
    with ApiClient(url, token) as client:
        client.delete_schedule(name)
    typer.echo(f"deleted {name}")


def serve_command(
    host: Annotated[str, typer.Option(help="address to bind; non-loopback needs a token")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    data_root: Annotated[
        list[str] | None,
        typer.Option(
            help="folder jobs may read and write (repeatable; default: cwd); after a local one, "
            "object-store prefixes such as s3://bucket/data may follow"
        ),
    ] = None,
    state_dir: Annotated[Path, typer.Option(help="job database, logs")] = Path(".cache/serve"),
    token_file: Annotated[Path | None, typer.Option(help="file holding the bearer token")] = None,
    job_slots: Annotated[int, typer.Option(min=1, help="jobs running at once")] = 2,
    max_job_workers: Annotated[int, typer.Option(min=1, help="most processes one job may use")] = 2,
    max_body_bytes: Annotated[int, typer.Option(min=1024, help="request body limit")] = 1 << 20,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster for executor: ray jobs")] = None,
    schedules_file: Annotated[Path | None, typer.Option(help="YAML file of schedules to load")] = None,
) -> None:
    """Run the curate service: REST API (/docs), job workers, cron schedules and the dashboard."""
    from api.server import serve

    serve(
        host, port, state_dir, data_root, token_file, job_slots, max_job_workers, max_body_bytes,
        ray_address, schedules_file,
    )  # fmt: skip

"""Typer commands for `curate serve`, `curate jobs ...` and `curate schedules ...` (client side via httpx).

The CLI root (api/main.py) wires them in. Every client command takes --url (default $CURATE_API_URL or
http://127.0.0.1:8000) and --token (default $CURATE_API_TOKEN or the file in $CURATE_API_TOKEN_FILE).
API errors print one line and exit 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from api.client import ApiClient, ApiError, read_document

jobs_app = typer.Typer(help="Submit and watch jobs on a curate service.", no_args_is_help=True)
schedules_app = typer.Typer(help="Cron schedules of batch runs on a curate service.", no_args_is_help=True)

Url = Annotated[
    str | None, typer.Option(help="service URL (default $CURATE_API_URL or http://127.0.0.1:8000)")
]
Token = Annotated[
    str | None, typer.Option(help="bearer token (default $CURATE_API_TOKEN / $CURATE_API_TOKEN_FILE)")
]


def one_line_errors(command: Callable[..., None]) -> Callable[..., None]:
    """API and connection errors as `error: ...` and exit code 2, like every curate user error."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except (ApiError, TimeoutError) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None

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
    kind: Annotated[str, typer.Option(help="curate, mix, train or mixsearch")] = "curate",
    executor: Annotated[str | None, typer.Option(help="curate jobs: local or ray")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="curate jobs: processes or actors")] = None,
    wait: Annotated[bool, typer.Option(help="wait until the job ends, then print it")] = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Submit a job; prints its id (or, with --wait, the finished job as JSON; exit 1 unless it succeeded)."""
    options = {k: v for k, v in {"executor": executor, "workers": workers}.items() if v is not None}
    with ApiClient(url, token) as client:
        job = client.submit_job(kind, read_document(config), options)
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
    state: Annotated[str | None, typer.Option(help="queued, running, succeeded, failed or cancelled")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print the page as JSON")] = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Jobs, newest first, as a table (or JSON)."""
    with ApiClient(url, token) as client:
        page = client.list_jobs(state, limit, offset)
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
def schedules_list(url: Url = None, token: Token = None) -> None:
    """Schedules with their cron, last and next fire time, versions and active run."""
    with ApiClient(url, token) as client:
        schedules = client.list_schedules()
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

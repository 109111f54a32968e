"""`serve()`: check the security rules, lock the state folder, and run the app under uvicorn.

`python -m api.server --help` runs it without the `curate` CLI (tests use that). One server per state
folder: a second one would supervise the same jobs twice, so it is refused (an flock that the kernel
releases when the process dies, even by SIGKILL).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
from pathlib import Path
from typing import IO

from api.security import check_bind
from api.settings import ServiceSettings, build_settings
from curate.errors import ConfigError

DEFAULT_STATE = Path(".cache/serve")


def lock_state_dir(state_dir: Path) -> IO[str]:
    handle = open(state_dir / "server.lock", "a+", encoding="utf-8")  # noqa: SIM115 (held until exit)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(
            f"another curate server uses {state_dir}; stop it or pass another --state-dir"
        ) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    state_dir: Path = DEFAULT_STATE,
    data_roots: list[Path | str] | None = None,
    token_file: Path | None = None,
    job_slots: int = 2,
    max_job_workers: int = 2,
    max_body_bytes: int = 1 << 20,
    ray_address: str | None = None,
    schedules_file: Path | None = None,
    log_level: str = "info",
) -> None:
    """Run the service until interrupted. Raises ConfigError (one line) for any setup error."""
    import uvicorn

    from api.app import create_app
    from api.kinds.base import KindContext
    from api.scheduler import read_schedules_file

    settings = build_settings(
        state_dir,
        data_roots or [Path.cwd()],
        token_file=token_file,
        job_slots=job_slots,
        max_job_workers=max_job_workers,
        max_body_bytes=max_body_bytes,
        ray_address=ray_address,
        schedules_file=schedules_file.resolve() if schedules_file else None,
    )
    check_bind(host, settings.token)
    if settings.schedules_file is not None:  # a bad file is one line now, not a traceback at startup
        read_schedules_file(settings.schedules_file, KindContext.of(settings))
    lock = lock_state_dir(settings.state_dir)
    try:
        _announce(settings, host, port)
        uvicorn.run(
            create_app(settings), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10
        )
    finally:
        lock.close()


def _announce(settings: ServiceSettings, host: str, port: int) -> None:
    auth = "bearer token required" if settings.token else "no token (loopback only)"
    roots = ", ".join(str(r) for r in settings.data_roots)
    print(
        f"curate service on http://{host}:{port} ({auth}); data roots: {roots}; state: {settings.state_dir}"
    )
    print(f"dashboard: http://{host}:{port}/dashboard   API docs: http://{host}:{port}/docs", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.server", description="Run the curate service.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    parser.add_argument("--data-root", action="append", dest="data_roots")
    parser.add_argument("--token-file", type=Path)
    parser.add_argument("--job-slots", type=int, default=2)
    parser.add_argument("--max-job-workers", type=int, default=2)
    parser.add_argument("--max-body-bytes", type=int, default=1 << 20)
    parser.add_argument("--ray-address")
    parser.add_argument("--schedules-file", type=Path)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    try:
        serve(**vars(args))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The service's settings: where its state lives, which folders jobs may touch, and its limits.

One frozen object built once by `serve()` and handed to every part of the service. Workers run in other
processes, so the settings (never the token) are also written to STATE/settings.json for them to read:
a worker must enforce the same data roots as the server that accepted the job.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from curate.errors import ConfigError
from curate.storage import is_url

TOKEN_ENV = "CURATE_API_TOKEN"
TOKEN_FILE_ENV = "CURATE_API_TOKEN_FILE"
MIN_TOKEN_CHARS = 16
SETTINGS_FILE = "settings.json"


@dataclass(frozen=True)
class ServiceSettings:
    state_dir: Path
    data_roots: tuple[Path | str, ...]  # local folders (the first one local), then object-store URLs
    token: str | None = field(default=None, repr=False)
    job_slots: int = 2  # jobs running at once (one worker subprocess each)
    max_job_workers: int = 2  # processes (local) or actors (ray) one job may ask for
    max_body_bytes: int = 1 << 20
    ray_address: str | None = None  # the only Ray cluster jobs may join; never taken from a request
    schedules_file: Path | None = None
    output_root: Path | None = None  # where a job without `output:` writes; default DATA_ROOT[0]/jobs
    scheduler_tick: float = 1.0
    supervisor_tick: float = 0.2
    misfire_grace: float = 60.0  # a cron time older than this at the tick that sees it counts as missed
    max_crashes: int = 3  # worker deaths before a job is failed instead of resumed
    cancel_grace: float = 3.0  # seconds between SIGTERM and SIGKILL of a cancelled job's workers

    @property
    def db_path(self) -> Path:
        return self.state_dir / "jobs.sqlite3"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def jobs_output_root(self) -> Path:
        return self.output_root or Path(self.data_roots[0]) / "jobs"

    def to_worker_json(self) -> str:
        """Everything but the token: workers never need it, and files outlive processes."""
        data: dict[str, Any] = asdict(replace(self, token=None))
        return json.dumps(data, default=str, indent=1)

    @classmethod
    def from_worker_json(cls, text: str) -> ServiceSettings:
        data = json.loads(text)
        data["state_dir"] = Path(data["state_dir"])
        data["data_roots"] = tuple(p if is_url(p) else Path(p) for p in data["data_roots"])
        for key in ("schedules_file", "output_root"):
            data[key] = Path(data[key]) if data[key] else None
        return cls(**data)


def build_settings(
    state_dir: Path,
    data_roots: list[Path | str],
    token: str | None = None,
    token_file: Path | None = None,
    **limits: Any,
) -> ServiceSettings:
    """Resolve folders (symlinks included) once, so every later containment check compares real paths."""
    if not data_roots:
        raise ConfigError("no data root: pass --data-root DIR (jobs may only read and write inside it)")
    if is_url(str(data_roots[0])):
        raise ConfigError(
            f"data root {data_roots[0]}: the first --data-root must be a local folder (job outputs and "
            "mixtures go there by default); pass object-store prefixes after it"
        )
    roots: list[Path | str] = []
    for root in data_roots:
        if is_url(str(root)):
            roots.append(str(root).rstrip("/"))
            continue
        real = Path(root).expanduser().resolve()
        if not real.is_dir():
            raise ConfigError(f"data root {root} is not a directory; create it or pass another --data-root")
        roots.append(real)
    state = Path(state_dir).expanduser().resolve()
    state.mkdir(parents=True, exist_ok=True)
    output_root = limits.pop("output_root", None)
    return ServiceSettings(
        state_dir=state,
        data_roots=tuple(roots),
        token=load_token(token, token_file),
        output_root=Path(output_root).resolve() if output_root else None,
        **limits,
    )


def load_token(token: str | None, token_file: Path | None) -> str | None:
    """The bearer token: an explicit value, else a file (--token-file or $CURATE_API_TOKEN_FILE), else
    $CURATE_API_TOKEN. A file keeps the secret out of `ps` and shell history, so it is preferred."""
    file = token_file or (Path(os.environ[TOKEN_FILE_ENV]) if os.environ.get(TOKEN_FILE_ENV) else None)
    if token is None and file is not None:
        if not file.is_file():
            raise ConfigError(f"token file {file} does not exist; create it or unset {TOKEN_FILE_ENV}")
        token = file.read_text(encoding="utf-8").strip()
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"the API token has {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return token


def write_worker_settings(settings: ServiceSettings) -> Path:
    path = settings.state_dir / SETTINGS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(settings.to_worker_json(), encoding="utf-8")
    tmp.replace(path)
    return path


def read_worker_settings(state_dir: Path) -> ServiceSettings:
    return ServiceSettings.from_worker_json((state_dir / SETTINGS_FILE).read_text(encoding="utf-8"))

"""The API from Python: what `curate jobs ...` and `curate schedules ...` call, usable on its own.

Errors come back as `ApiError` with the HTTP status and one readable line (for a 422, the bad field's
path and the message), so the CLI can print them like every other user error.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from api.errors import dotted
from api.settings import TOKEN_ENV, TOKEN_FILE_ENV
from curate.errors import ConfigError
from curate.yamlfile import read_yaml

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "CURATE_API_URL"
TERMINAL = ("succeeded", "failed", "cancelled")


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def default_token() -> str | None:
    """$CURATE_API_TOKEN, else the file named by $CURATE_API_TOKEN_FILE (the server's own sources)."""
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    file = os.environ.get(TOKEN_FILE_ENV)
    return Path(file).read_text(encoding="utf-8").strip() if file and Path(file).is_file() else None


def describe_error(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return f"HTTP {response.status_code}: {response.text.strip()[:200]}"
    if isinstance(detail, list):
        return "; ".join(f"{dotted(item.get('loc', []))}: {item.get('msg')}" for item in detail)
    return f"HTTP {response.status_code}: {detail}"


class ApiClient:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        token = token or default_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ApiError(
                0, f"cannot reach the curate service at {self.url} ({error}); is it running?"
            ) from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, describe_error(response))
        return response

    # -- jobs -----------------------------------------------------------------------------------------------

    def submit_job(self, kind: str, config: dict[str, Any], options: dict[str, Any] | None = None) -> dict:
        body = {"kind": kind, "config": config, "options": options or {}}
        return self.call("POST", "/v1/jobs", json=body).json()

    def list_jobs(
        self, state: str | None = None, limit: int = 50, offset: int = 0, schedule: str | None = None
    ) -> dict:
        params = {"state": state, "limit": limit, "offset": offset, "schedule": schedule}
        return self.call("GET", "/v1/jobs", params={k: v for k, v in params.items() if v is not None}).json()

    def show_job(self, job_id: str) -> dict:
        return self.call("GET", f"/v1/jobs/{job_id}").json()

    def cancel_job(self, job_id: str) -> dict:
        return self.call("POST", f"/v1/jobs/{job_id}/cancel").json()

    def job_manifest(self, job_id: str) -> dict:
        return self.call("GET", f"/v1/jobs/{job_id}/manifest").json()

    def job_logs(self, job_id: str, offset: int = 0, tail: int | None = None) -> tuple[str, int]:
        params: dict[str, int] = {"offset": offset} if tail is None else {"tail": tail}
        response = self.call("GET", f"/v1/jobs/{job_id}/logs", params=params)
        return response.text, int(response.headers.get("X-Next-Offset", offset))

    def follow_logs(self, job_id: str, poll: float = 1.0) -> Iterator[str]:
        """Log text as it is written, until the job ends."""
        offset = 0
        while True:
            text, offset = self.job_logs(job_id, offset)
            if text:
                yield text
            if self.show_job(job_id)["state"] in TERMINAL:
                text, offset = self.job_logs(job_id, offset)
                if text:
                    yield text
                return
            time.sleep(poll)

    def wait_job(self, job_id: str, timeout: float = 3600, poll: float = 0.2) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.show_job(job_id)
            if job["state"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout:.0f}s")
            time.sleep(poll)

    # -- schedules ------------------------------------------------------------------------------------------

    def create_schedule(self, spec: dict[str, Any]) -> dict:
        return self.call("POST", "/v1/schedules", json=spec).json()

    def list_schedules(self) -> list[dict]:
        return self.call("GET", "/v1/schedules").json()

    def show_schedule(self, name: str) -> dict:
        return self.call("GET", f"/v1/schedules/{name}").json()

    def delete_schedule(self, name: str) -> None:
        self.call("DELETE", f"/v1/schedules/{name}")

    def run_schedule(self, name: str) -> dict:
        return self.call("POST", f"/v1/schedules/{name}/run").json()


def read_document(path: Path) -> dict[str, Any]:
    """A YAML or JSON file holding one mapping (a job config or a schedule)."""
    data = read_yaml(path, "job or schedule file")  # JSON is YAML too
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top; write the job or schedule as YAML keys")
    return data

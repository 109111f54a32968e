"""Shared fixtures: where the real data is, and how to run the real `curate` command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from curate.textsources import shared_data_dir
from tests.s3_server import S3Server, start_s3_server

os.environ.setdefault("TRITON_INTERPRET", "1")  # Triton kernels run on the CPU interpreter in tests
# Every Ray the tests start or join (in-process, the `ray start` cluster) without token auth: a process keeps
# the auth mode of its first Ray, and all of them listen on 127.0.0.1 only.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is absent (set CURATE_SHARED_DATA to point at it)")
    return path


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 protocol server on 127.0.0.1 for the session (tests/s3_server.py)."""
    yield from start_s3_server()


@pytest.fixture(scope="session")
def web(shared: Path) -> Path:
    return shared / "web"


def run_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """The installed console entry point, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "api.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=timeout,
    )

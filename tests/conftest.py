"""Shared fixtures: where the real data is, and how to run the real `curate` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from curate.textsources import shared_data_dir

os.environ.setdefault("TRITON_INTERPRET", "1")  # Triton kernels run on the CPU interpreter in tests

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is absent (set CURATE_SHARED_DATA to point at it)")
    return path


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

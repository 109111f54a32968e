"""Property-based requests generated from the OpenAPI spec (schemathesis): no input may cause a 5xx.

A dedicated server, so generated requests (which may create schedules or jobs) touch nothing else. The
seed is fixed, so a CI failure replays exactly; the budget is small to stay cheap on a shared machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from api_harness import Server


def test_generated_requests_never_get_a_server_error(tmp_path: Path) -> None:
    pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install schemathesis)")
    (tmp_path / "data").mkdir()
    server = Server(tmp_path / "state", tmp_path / "data").start()
    try:
        command = [
            sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
            "-H", f"Authorization: Bearer {server.token}",
            "--checks", "not_a_server_error", "--max-examples", "5", "--seed", "1",
            "--phases", "coverage,fuzzing",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "Server error" not in result.stdout
    assert "Traceback" not in server.log.read_text()

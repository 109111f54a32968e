"""Processes of a run end with it: a SIGKILLed `curate run` leaves no pool process writing into its output,
and a second run into the same output refuses while the first holds it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from curate.process import group_members
from tests.conftest import REPO
from tests.core.helpers import write_config
from tests.core.test_resume import SHARDS, make_shards

SETTLE = 120  # seconds: generous limits for a loaded machine; the checks pass as soon as they hold


def curate_run(config: Path, out: Path, workers: int = 2) -> subprocess.Popen:
    """`curate run` in its own session, so its process group holds it and every process it starts."""
    command = [sys.executable, "-m", "api.main", "run", str(config), "--out", str(out)]
    return subprocess.Popen(
        [*command, "--workers", str(workers)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def records(out: Path) -> set[str]:
    return {p.name for p in (out / "_state" / "shards").glob("*.json")}


def wait_until(predicate: Callable[[], object], what: str, timeout: float = SETTLE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    shards = tmp_path / "shards"
    shards.mkdir()
    make_shards(shards)
    inputs = [{"path": str(shards / "*.jsonl.gz"), "name": "wiki"}]
    stages = [{"normalize": {}}, {"tag": {}}]
    return write_config(tmp_path, {"inputs": inputs, "stages": stages, "batch_docs": 50})


@pytest.fixture
def running(config: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A `curate run --workers 2` that has finished its first shard; its whole group is killed at the end."""
    out = tmp_path / "out"
    process = curate_run(config, out)
    wait_until(lambda: records(out) or process.poll() is not None, "the first completed shard")
    assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
    yield process, out
    for pid in group_members(process.pid):
        os.kill(pid, signal.SIGKILL)
    process.wait()


def test_sigkill_of_curate_run_ends_its_pool_processes(running: tuple[subprocess.Popen, Path]) -> None:
    process, out = running
    pool = [pid for pid in group_members(process.pid) if pid != process.pid]
    assert len(pool) >= 2, f"expected the pool's processes in the run's group, found {pool}"
    os.kill(process.pid, signal.SIGKILL)  # the run only, as the OOM killer would: not its group
    process.wait()
    at_kill = records(out)
    wait_until(lambda: not group_members(process.pid), "every pool process to end with the run")
    assert records(out) == at_kill, "a completion record was written after the run was killed"
    assert len(at_kill) < SHARDS, "the run finished before it could be killed; make the shards bigger"


def test_second_run_into_the_same_output_refuses(
    config: Path, running: tuple[subprocess.Popen, Path]
) -> None:
    first, out = running
    second = curate_run(config, out)
    _, stderr = second.communicate(timeout=SETTLE)
    lines = stderr.decode().strip().splitlines()
    assert second.returncode != 0
    assert len(lines) == 1 and "being written by another curate run" in lines[0] and str(out) in lines[0]
    assert first.poll() is None, "the refused run must not disturb the one that holds the output"

"""Promises of the service that need a server of their own: its state folder inside the data root, one
job slot (so a job can be held in the queue), and a token given three ways at once.

* the token: --token-file wins over $CURATE_API_TOKEN_FILE, which wins over $CURATE_API_TOKEN;
* the state folder: no job may read or write it, though it lies inside the data root;
* workers never see the token (their environment and command line, read from /proc);
* workers and their pools run at a lower CPU priority than the server;
* the worker checks paths again before running: a folder swapped for a symlink out of the root after
  submission fails the job, and nothing is read from outside;
* a job whose worker dies three times fails instead of being retried forever.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_harness import Server, curate_config, make_shards, pid_alive, wait_for

from api.client import ApiClient
from curate.process import group_members

TOKENS = {
    "option": "token-from-the-option-file-0123",
    "env_file": "token-from-the-env-file-01234",
    "env": "token-from-the-environment-012",
}
SETTLE = 180  # seconds: waits end as soon as their condition holds; the limit only catches a hang


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("promises-root").resolve()


@pytest.fixture(scope="module")
def server(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    secrets = tmp_path_factory.mktemp("secrets")
    (secrets / "option").write_text(TOKENS["option"] + "\n")
    (secrets / "env-file").write_text(TOKENS["env_file"] + "\n")
    env = {"CURATE_API_TOKEN": TOKENS["env"], "CURATE_API_TOKEN_FILE": str(secrets / "env-file")}
    extra = ("--job-slots", "1", "--token-file", str(secrets / "option"))
    server = Server(root / "state", root, token=TOKENS["option"], extra=extra, env=env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[ApiClient]:
    with server.client() as api:
        yield api


def running(client: ApiClient, job_id: str, not_pid: int | None = None) -> dict[str, Any]:
    """The job once a worker (other than `not_pid`) runs it."""

    def started() -> dict[str, Any] | None:
        job = client.show_job(job_id)
        assert job["state"] in ("queued", "running"), job
        pid = job["worker_pid"]
        return job if job["state"] == "running" and pid and pid != not_pid else None

    return wait_for(started, SETTLE, f"a worker running job {job_id}")


def test_the_token_file_option_wins(server: Server) -> None:
    for source, token in TOKENS.items():
        headers = {"Authorization": f"Bearer {token}"}
        response = httpx.get(server.url + "/v1/jobs", headers=headers, timeout=30)
        assert response.status_code == (200 if source == "option" else 401), source


def submit(server: Server, config: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token}"}
    body = {"kind": "curate", "config": config}
    return httpx.post(server.url + "/v1/jobs", json=body, headers=headers, timeout=30)


def test_the_state_folder_is_refused_inside_the_data_root(server: Server) -> None:
    assert server.state_dir.parent == server.data_root
    make_shards(server.data_root / "state-test-in", [{"id": "a", "text": "some text"}], per_shard=1)
    cases = {
        "a glob in it": (curate_config("state/*.sqlite3"), ["inputs", 0, "path"]),
        "a glob over the root": (curate_config("**/*.sqlite3"), ["inputs", 0, "path"]),
        "output": (curate_config("state-test-in/*.jsonl.gz", "state/beside-the-db"), ["output"]),
        "dedup index": (
            curate_config("state-test-in/*.jsonl.gz", dedup={"index": "state/index"}),
            ["dedup", "index"],
        ),
    }
    for name, (config, loc) in cases.items():
        response = submit(server, config)
        assert response.status_code == 422, (name, response.text)
        (detail,) = response.json()["detail"]
        assert detail["loc"] == ["body", "config", *loc] and "state folder" in detail["msg"], (name, detail)
    assert not (server.state_dir / "beside-the-db").exists() and not (server.state_dir / "index").exists()


@pytest.fixture(scope="module")
def blocker(client: ApiClient, root: Path, texts: dict[str, list[dict[str, Any]]]) -> Iterator[dict]:
    """A long job with two pool processes, holding the server's only slot until cancelled."""
    make_shards(root / "blocker-in", (texts["wiki"] * 10)[:600], per_shard=2, bad=False)
    job = client.submit_job("curate", curate_config("blocker-in/*.jsonl.gz"), {"workers": 2})
    job = running(client, job["id"])
    wait_for(lambda: len(group_members(job["worker_pid"])) >= 3, SETTLE, "the worker's pool processes")
    yield job
    if client.show_job(job["id"])["state"] in ("queued", "running"):
        client.cancel_job(job["id"])


def test_workers_never_see_the_token(blocker: dict[str, Any]) -> None:
    processes = group_members(blocker["worker_pid"])
    assert blocker["worker_pid"] in processes and len(processes) >= 3  # the worker and its pool
    for pid in processes:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert environ and b"CURATE_API_TOKEN" not in environ, pid
        for token in TOKENS.values():
            assert token.encode() not in environ and token.encode() not in cmdline, pid


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_jobs_yield_the_cpu_to_the_server(server: Server, blocker: dict[str, Any]) -> None:
    """The worker and its pool run at a lower priority than the server, so polls stay fast."""
    assert server.process is not None
    processes = group_members(blocker["worker_pid"])
    assert len(processes) >= 3
    for pid in processes:
        assert niceness(pid) >= niceness(server.process.pid) + 10, pid


def test_worker_rechecks_paths_before_running(
    client: ApiClient, blocker: dict[str, Any], root: Path, tmp_path: Path, texts: dict
) -> None:
    """Accepted while its folder is inside the root; the folder becomes a symlink out of the root while
    the job waits for a slot; the worker refuses it and nothing outside is read."""
    make_shards(root / "recheck-in", texts["wiki"][:4], per_shard=2, bad=False)
    make_shards(tmp_path / "outside", texts["news"][:4], per_shard=2, bad=False)
    job = client.submit_job("curate", curate_config("recheck-in/*.jsonl.gz"))
    assert client.show_job(job["id"])["state"] == "queued"  # the blocker holds the only slot
    (root / "recheck-in").rename(root / "recheck-moved")
    (root / "recheck-in").symlink_to(tmp_path / "outside")
    client.cancel_job(blocker["id"])
    done = client.wait_job(job["id"], timeout=SETTLE)
    assert done["state"] == "failed" and "outside the data roots" in done["error"], done
    assert not list(Path(done["output"]).glob("corpus/**/*.parquet"))


def records(output: str) -> set[str]:
    return {path.name for path in (Path(output) / "_state" / "shards").glob("*.json")}


def kill_attempt(client: ApiClient, job: dict[str, Any], previous: int | None, while_writing: bool) -> int:
    """SIGKILL the next attempt's worker alone once its pool runs (and, `while_writing`, has written a
    completion record); return when the worker and every pool process are gone."""
    pid = running(client, job["id"], not_pid=previous)["worker_pid"]
    wait_for(lambda: len(group_members(pid)) >= 3, SETTLE, "the attempt's pool processes")
    if while_writing:
        seen = records(job["output"])
        wait_for(lambda: records(job["output"]) - seen, SETTLE, "a completion record of this attempt")
    pool = [member for member in group_members(pid) if member != pid]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(pid_alive(p) for p in [pid, *pool]), SETTLE, "the worker and its pool to end")
    return pid


def test_three_worker_deaths_fail_the_job(
    client: ApiClient, blocker: dict[str, Any], root: Path, texts: dict
) -> None:
    """Each attempt's worker is SIGKILLed alone (its pool processes must end with it); after the third
    the job fails, and no completion record appears once the last attempt's processes are gone."""
    if client.show_job(blocker["id"])["state"] in ("queued", "running"):
        client.cancel_job(blocker["id"])
    make_shards(root / "crash-in", (texts["wiki"] * 4)[:240], per_shard=2, bad=False)
    job = client.submit_job("curate", curate_config("crash-in/*.jsonl.gz"), {"workers": 2})
    pid = None
    for attempt in (1, 2, 3):
        pid = kill_attempt(client, job, pid, while_writing=attempt == 3)
    at_kill = records(job["output"])
    done = client.wait_job(job["id"], timeout=SETTLE)
    assert done["state"] == "failed" and done["attempts"] == 3, done
    assert "worker died 3 times (last: signal SIGKILL); giving up" in done["error"]
    assert "giving up" in client.job_logs(job["id"])[0]
    assert records(job["output"]) == at_kill and len(at_kill) < 120

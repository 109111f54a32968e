"""Crashes: a killed worker and a SIGKILLed server both leave the job resumable, and it resumes from the
completion records to the output of one uninterrupted run. Missed cron runs follow their policy."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_harness import Server, corpus_rows, curate_config, files_under, make_shards, pid_alive, wait_for

from api.client import ApiClient
from curate.config import parse_config, resolve_paths
from curate.process import group_members
from curate.run import run_pipeline

SHARDS = 20
DAY = 86400


@pytest.fixture(scope="module")
def resume_input(data_root: Path, texts: dict[str, list[dict[str, Any]]]) -> str:
    make_shards(data_root / "resume-in", texts["wiki"][: SHARDS * 3], per_shard=3)
    return "resume-in/*.jsonl.gz"


@pytest.fixture(scope="module")
def clean_run(resume_input: str, data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same config run once, uninterrupted, in this process: the reference output."""
    out = tmp_path_factory.mktemp("clean") / "out"
    config = resolve_paths(parse_config(curate_config(resume_input)), base=data_root, out=str(out))
    run_pipeline(config, progress=False)
    return out


def completion_records(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "_state/shards").glob("*.json")}


def start_and_wait_for_progress(
    client: ApiClient, config: dict[str, Any], options: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, int]]:
    job = client.submit_job("curate", config, options)
    out = Path(job["output"])
    wait_for(lambda: completion_records(out), 120, "the first completed shard", poll=0.02)
    return client.show_job(job["id"]), completion_records(out)


def assert_same_output(out: Path, clean: Path, before: dict[str, int]) -> None:
    """Equal rows and files as the uninterrupted run, and shards finished before the crash not redone."""
    assert files_under(out, "corpus") == files_under(clean, "corpus")
    assert files_under(out, "rejects") == files_under(clean, "rejects")
    assert corpus_rows(out).equals(corpus_rows(clean))
    after = completion_records(out)
    assert len(after) == SHARDS and all(after[name] == mtime for name, mtime in before.items())


def test_killed_worker_resumes_to_the_same_output(
    client: ApiClient, resume_input: str, clean_run: Path
) -> None:
    """SIGKILL of the worker alone (as the OOM killer would): its pool processes end with it, before the
    next attempt starts, so no old process writes beside the new one."""
    job, before = start_and_wait_for_progress(client, curate_config(resume_input), {"workers": 2})
    pool = [pid for pid in group_members(job["worker_pid"]) if pid != job["worker_pid"]]
    os.kill(job["worker_pid"], signal.SIGKILL)
    assert len(before) < SHARDS, "the job finished before it could be killed"
    assert len(pool) >= 2, f"expected the worker's pool processes, found {pool}"
    wait_for(lambda: not any(pid_alive(pid) for pid in pool), 60, "the pool processes to end with the worker")
    done = client.wait_job(job["id"], timeout=180)
    assert done["state"] == "succeeded", done["error"]
    assert (done["attempts"], done["crashes"]) == (2, 1)
    assert "worker died (signal SIGKILL)" in client.job_logs(job["id"])[0]
    assert_same_output(Path(done["output"]), clean_run, before)


@pytest.fixture(scope="module")
def restart(
    tmp_path_factory: pytest.TempPathFactory, data_root: Path, resume_input: str, texts: dict[str, list[dict]]
) -> Iterator[dict[str, Any]]:
    """Server A gets two daily schedules and a long job, and is SIGKILLed mid-job; the schedules' last run
    is moved two days back (the outage), and server B starts on the same state folder."""
    state = tmp_path_factory.mktemp("restart-state")
    schedules = {}
    for policy in ("catch_up_once", "skip"):
        make_shards(data_root / f"arrivals-{policy}", texts["news"][:8], per_shard=8, bad=False)
        pipeline = curate_config(
            f"arrivals-{policy}/*.jsonl.gz", f"corpus-{policy}", dedup={"index": f"index-{policy}"}
        )
        schedules[policy] = {
            "name": policy.replace("_", "-"),
            "cron": "0 0 * * *",
            "missed": policy,
            "pipeline": pipeline,
        }
    declared = state.parent / "schedules.yaml"  # one schedule from the schedules file, one from the API
    declared.write_text(yaml.safe_dump({"schedules": [schedules["skip"]]}))
    first = Server(state, data_root, extra=("--schedules-file", str(declared))).start()
    with first.client() as api:
        api.create_schedule(schedules["catch_up_once"])
        job, before = start_and_wait_for_progress(api, curate_config(resume_input))
    first.kill()
    worker_gone = wait_for(lambda: not pid_alive(job["worker_pid"]), 15, "the worker to die with its server")
    with sqlite3.connect(state / "jobs.sqlite3") as con:
        con.execute("UPDATE schedules SET last_fire = last_fire - ?", (2 * DAY,))
    second = Server(state, data_root, extra=("--schedules-file", str(declared))).start()
    with second.client() as api:
        yield {"job": job, "before": before, "worker_gone": worker_gone, "client": api}
    second.stop()


def test_server_sigkill_mid_job_resumes_after_restart(restart: dict[str, Any], clean_run: Path) -> None:
    api, job = restart["client"], restart["job"]
    assert restart["worker_gone"] and len(restart["before"]) < SHARDS
    done = api.wait_job(job["id"], timeout=180)
    assert done["state"] == "succeeded", done["error"]
    assert (done["attempts"], done["crashes"]) == (2, 0)  # a server restart is not the job's crash
    assert "server restarted; job queued to resume" in api.job_logs(job["id"])[0]
    assert_same_output(Path(done["output"]), clean_run, restart["before"])


def test_jobs_and_schedules_survive_the_restart(restart: dict[str, Any]) -> None:
    api = restart["client"]
    assert restart["job"]["id"] in [j["id"] for j in api.list_jobs(limit=500)["jobs"]]
    origins = {s["name"]: s["origin"] for s in api.list_schedules()}
    assert origins == {"catch-up-once": "api", "skip": "file"}


def test_missed_runs_follow_the_policy(restart: dict[str, Any]) -> None:
    api = restart["client"]
    caught_up = wait_for(lambda: api.list_jobs(schedule="catch-up-once")["jobs"], 60, "the catch-up run")
    assert len(caught_up) == 1
    run = api.wait_job(caught_up[0]["id"], timeout=120)
    assert run["state"] == "succeeded", run["error"]
    assert run["result"]["version"] == 1 and run["result"]["totals"]["read"] == 8
    events = [e["event"] for e in api.show_schedule("catch-up-once")["events"]]
    assert events.count("started") == 1 and "missed_skipped" not in events
    skipped = api.show_schedule("skip")
    assert [e["event"] for e in skipped["events"]] == ["missed_skipped"]
    assert api.list_jobs(schedule="skip")["total"] == 0 and skipped["versions"] == []

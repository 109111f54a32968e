"""Scheduled batch runs: only new shards, dedup against the persistent index, versions, no overlap."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from api_harness import Server, curate_config, make_shards, wait_for, write_jsonl_gz

from api.client import ApiClient, ApiError
from api.kinds import is_available

YEARLY = "0 0 1 1 *"  # never due during a test: runs are triggered by hand


def feed_schedule(name: str, cron: str = YEARLY, mixture: bool = False) -> dict[str, Any]:
    pipeline = curate_config(f"{name}-in/*.jsonl.gz", f"{name}-corpus", dedup={"index": f"{name}-index"})
    spec: dict[str, Any] = {"name": name, "cron": cron, "missed": "skip", "pipeline": pipeline}
    if mixture:
        mix = {"budget": 3000, "tokenizer": {"chars_per_token": 4.0}, "domains": {"wiki": 1.0}}
        spec["mixture"] = {"spec": mix, "output": f"{name}-mixture"}
    return spec


def run_now(client: ApiClient, name: str) -> dict[str, Any]:
    started = client.run_schedule(name)
    assert started["event"] == "started", started
    return started


def test_schedule_runs_new_shards_only_and_dedups_against_the_index(
    client: ApiClient, server: Server, data_root: Path, texts: dict[str, list[dict[str, Any]]]
) -> None:
    arrivals = data_root / "feed-in"
    make_shards(arrivals, texts["wiki"][:8], per_shard=8, prefix="a", bad=False)
    make_shards(arrivals, texts["news"][:8], per_shard=8, prefix="b", bad=False)
    mixture = is_available("mix")
    client.create_schedule(feed_schedule("feed", mixture=mixture))

    first = run_now(client, "feed")
    with pytest.raises(ApiError) as overlap:  # the first run is still queued or running
        client.run_schedule("feed")
    assert overlap.value.status == 409
    with sqlite3.connect(server.state_dir / "jobs.sqlite3") as con, pytest.raises(sqlite3.IntegrityError):
        con.execute(  # the database itself refuses a second active run of the schedule
            "INSERT INTO jobs (id, kind, state, config, options, output, locks, schedule, created_at) "
            "VALUES ('intruder', 'batch', 'queued', '{}', '{}', '/x', '[]', 'feed', 0)"
        )
    v1 = client.wait_job(first["job_id"], timeout=120)
    assert v1["state"] == "succeeded", v1["error"]
    assert v1["result"]["version"] == 1 and v1["result"]["totals"]["read"] == 16
    assert Path(v1["output"]).name == "v0001"

    repeats = [{**doc, "id": f"again/{doc['id']}"} for doc in texts["wiki"][:5]]  # exact copies, new ids
    write_jsonl_gz(arrivals / "c-000.jsonl.gz", repeats + texts["code"][:4])
    second = run_now(client, "feed")
    v2 = client.wait_job(second["job_id"], timeout=120)
    assert v2["state"] == "succeeded", v2["error"]
    manifest = client.job_manifest(v2["id"])
    assert [i["source"] for i in manifest["inputs"]] == ["wiki/c-000.jsonl.gz"]  # only the new shard
    assert manifest["totals"] == {**manifest["totals"], "read": 9, "duplicates": 5, "kept": 4}
    assert manifest["dedup"]["exact_duplicate"] == 5 and manifest["dedup"]["index_version_after"] == 2
    assert client.run_schedule("feed")["event"] == "nothing_new"

    schedule = client.show_schedule("feed")
    assert [v["version"] for v in schedule["versions"]] == [1, 2]
    assert [v["shards"] for v in schedule["versions"]] == [2, 1]
    runs = client.list_jobs(schedule="feed")["jobs"]
    spans = sorted((j["started_at"], j["finished_at"]) for j in runs)
    assert len(runs) == 2 and spans[0][1] <= spans[1][0]  # one after the other, never overlapping
    if mixture:
        mix = json.loads((data_root / "feed-mixture" / "manifest.json").read_text())
        assert len(mix["corpora"]) == 2 and v2["result"]["mixture"]["corpora"] == 2


def test_cron_fires_and_later_ticks_find_nothing_new(
    client: ApiClient, data_root: Path, texts: dict[str, list[dict[str, Any]]]
) -> None:
    make_shards(data_root / "ticker-in", texts["news"][8:12], per_shard=4, bad=False)
    client.create_schedule(feed_schedule("ticker", cron="* * * * * */2"))  # every 2 seconds
    jobs = wait_for(lambda: client.list_jobs(schedule="ticker")["jobs"], 30, "a cron-fired run", poll=0.2)
    run = client.wait_job(jobs[0]["id"], timeout=120)
    assert run["state"] == "succeeded", run["error"]
    wait_for(
        lambda: "nothing_new" in [e["event"] for e in client.show_schedule("ticker")["events"]],
        20,
        "a later tick",
    )
    events = client.show_schedule("ticker")["events"]
    started = [e for e in events if e["event"] == "started"]
    assert len(started) == 1 and started[0]["detail"].startswith("cron:")
    client.delete_schedule("ticker")
    assert client.list_jobs(schedule="ticker")["total"] == 1  # its run stays in the job list
    with pytest.raises(ApiError) as gone:
        client.show_schedule("ticker")
    assert gone.value.status == 404


def test_schedule_validation(client: ApiClient, server: Server) -> None:
    def loc_of(spec: dict[str, Any]) -> list[Any]:
        with pytest.raises(ApiError) as error:
            client.create_schedule(spec)
        assert error.value.status == 422
        return error.value.args[0].split(":")[0].split(".")

    assert loc_of({**feed_schedule("bad"), "cron": "every day"}) == ["body", "cron"]
    no_index = feed_schedule("bad")
    del no_index["pipeline"]["dedup"]
    assert loc_of(no_index) == ["body", "pipeline", "dedup", "index"]
    outside = feed_schedule("bad")
    outside["pipeline"]["output"] = "/etc/corpus"
    assert loc_of(outside) == ["body", "pipeline", "output"]
    assert loc_of({**feed_schedule("bad"), "missed": "sometimes"}) == ["body", "missed"]

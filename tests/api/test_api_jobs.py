"""Jobs over HTTP against a real server: submit, complete, manifest, logs, listing, validation, cancel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from api_harness import Server, curate_config, make_shards, wait_for

from api.client import ApiClient, ApiError
from api.kinds import is_available


def test_submitted_job_completes_with_manifest(client: ApiClient, finished_job: dict[str, Any]) -> None:
    assert finished_job["state"] == "succeeded", finished_job["error"]
    assert finished_job["progress"] == {"done": 4, "planned": 4, "fraction": 1.0}
    totals = finished_job["result"]["totals"]
    assert totals == {**totals, "read": 26, "kept": 24, "rejected": 2}
    manifest = client.job_manifest(finished_job["id"])
    funnel = {stage["stage"]: stage for stage in manifest["stages"]}
    assert funnel["read"]["dropped"] == {"unreadable": 1}
    assert funnel["normalize"]["dropped"] == {"empty": 1}
    assert manifest["domains"] == {"wiki": 24}
    out = Path(finished_job["output"])
    assert (out / "manifest.json").is_file() and out.parent.name == "jobs"  # default output under the root


def test_logs_list_and_filters(client: ApiClient, finished_job: dict[str, Any]) -> None:
    text, offset = client.job_logs(finished_job["id"])
    assert "attempt 1 starting" in text and "succeeded" in text and offset == len(text.encode())
    assert client.job_logs(finished_job["id"], offset=offset)[0] == ""
    assert client.job_logs(finished_job["id"], tail=1)[0].strip().endswith("succeeded")
    succeeded = client.list_jobs(state="succeeded")
    assert finished_job["id"] in [j["id"] for j in succeeded["jobs"]]
    assert all(j["state"] == "succeeded" for j in succeeded["jobs"])
    first = client.list_jobs(limit=1)
    assert len(first["jobs"]) == 1 and (first["next_offset"] == 1) == (first["total"] > 1)
    with pytest.raises(ApiError) as error:
        client.list_jobs(state="bogus")
    assert error.value.status == 422


def _detail(server: Server, body: Any) -> list[dict[str, Any]]:
    response = httpx.post(
        server.url + "/v1/jobs", json=body, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    )
    assert response.status_code == 422, response.text
    return response.json()["detail"]


def test_invalid_configs_are_422_with_the_field_path(server: Server, finished_job: dict[str, Any]) -> None:
    typo = _detail(server, {"kind": "curate", "config": {"inputs": [{"pathh": "x/*.gz"}]}})
    assert ["body", "config", "inputs", 0, "pathh"] in [d["loc"] for d in typo]
    stage = _detail(
        server,
        {
            "kind": "curate",
            "config": {"inputs": [{"path": "jobs-in/*.gz"}], "stages": [{"tag": {"domain": {"bogus": 1}}}]},
        },
    )
    assert stage[0]["loc"] == ["body", "config", "stages", 0, "tag", "domain", "bogus"]
    value = _detail(
        server, {"kind": "curate", "config": {"inputs": [{"path": "jobs-in/*.gz"}], "batch_docs": 0}}
    )
    assert value[0]["loc"] == ["body", "config", "batch_docs"]
    nothing = _detail(server, {"kind": "curate", "config": {"inputs": [{"path": "absent/*.jsonl.gz"}]}})
    assert nothing[0]["loc"] == ["body", "config"] and "matches no file" in nothing[0]["msg"]
    clash = curate_config("jobs-in/*.jsonl.gz", finished_job["output"], seed=7)  # another config, same output
    assert _detail(server, {"kind": "curate", "config": clash})[0]["loc"] == ["body", "config", "output"]
    options = _detail(
        server, {"kind": "curate", "config": curate_config("jobs-in/*.gz"), "options": {"workers": 99}}
    )
    assert options[0]["loc"] == ["body", "options", "workers"]
    missing = _detail(server, {"config": {}})
    assert missing[0]["loc"] == ["body", "kind"]


def test_kinds_come_from_the_registry_only(client: ApiClient, server: Server) -> None:
    kinds = {k["kind"]: k for k in client.call("GET", "/v1/kinds").json()}
    assert set(kinds) == {"curate", "mix", "train", "mixsearch", "batch"}
    assert all(kinds[name]["available"] == is_available(name) for name in kinds)  # this build, both sides
    for kind in ("os.system", "subprocess:run", "../curate", "batch"):
        detail = _detail(server, {"kind": kind, "config": {}})
        assert detail[0]["loc"] == ["body", "kind"], kind
    extra = _detail(server, {"kind": "curate", "config": {}, "command": ["rm", "-rf", "/"]})
    assert extra[0]["loc"] == ["body", "command"]


def test_cancel_stops_a_running_job(
    client: ApiClient, data_root: Path, texts: dict[str, list[dict[str, Any]]]
) -> None:
    shards = 400  # many small shards: the job must still be running when the first one is done
    make_shards(data_root / "cancel-in", (texts["wiki"] * 8)[:shards], per_shard=1, bad=False)
    job = client.submit_job("curate", curate_config("cancel-in/*.jsonl.gz"))
    out = Path(job["output"])
    wait_for(lambda: any((out / "_state/shards").glob("*.json")), 90, "the first completed shard")
    asked = client.cancel_job(job["id"])
    assert asked["cancel_requested"]
    stopped = wait_for(  # the limit only catches a hang: a loaded machine may take a while
        lambda: (j := client.show_job(job["id"]))["state"] == "cancelled" and j, 120, "cancelled"
    )
    done = len(list((out / "_state/shards").glob("*.json")))
    assert 1 <= stopped["result"]["completed"] == stopped["progress"]["done"] == done < shards
    assert stopped["result"]["planned"] == shards and stopped["worker_pid"] is None
    assert "cancelled with" in client.job_logs(job["id"])[0]
    with pytest.raises(ApiError) as again:
        client.cancel_job(job["id"])
    assert again.value.status == 409


def test_openapi_docs_page_is_served_without_a_cdn(server: Server) -> None:
    import httpx

    page = httpx.get(f"{server.url}/docs", timeout=30)
    assert page.status_code == 200 and "/docs-static/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    script = httpx.get(f"{server.url}/docs-static/swagger-ui-bundle.js", timeout=30)
    assert script.status_code == 200 and len(script.content) > 100_000
    assert httpx.get(f"{server.url}/openapi.json", timeout=30).json()["info"]["title"] == "curate service"

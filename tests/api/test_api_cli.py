"""The CLI commands (`curate jobs ...`, `curate schedules ...`) against the real server, as a user runs
them: typer's runner invokes the same command functions the `curate` CLI wires in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from api_harness import Server, curate_config, free_port
from typer.testing import CliRunner

from api.cli import EXIT_AUTH, EXIT_NOT_FOUND, EXIT_UNREACHABLE, jobs_app, schedules_app
from api.main import app as root_app

runner = CliRunner()


def run(app: Any, server: Server, *args: str, token: str | None = None) -> Any:
    result = runner.invoke(app, [*args, "--url", server.url, "--token", token or server.token])
    return result


def test_jobs_commands(server: Server, finished_job: dict[str, Any], tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(curate_config("jobs-in/*.jsonl.gz")))
    submitted = run(jobs_app, server, "submit", str(config), "--workers", "1", "--wait")
    assert submitted.exit_code == 0, submitted.output
    job = json.loads(submitted.output)
    assert job["state"] == "succeeded" and job["result"]["totals"]["kept"] == 24

    listed = run(jobs_app, server, "list", "--state", "succeeded", "--json")
    assert job["id"] in [j["id"] for j in json.loads(listed.output)["jobs"]]
    table = run(jobs_app, server, "list", "--limit", "500")
    assert table.exit_code == 0 and finished_job["id"] in table.output

    shown = run(jobs_app, server, "show", job["id"], "--manifest")
    assert json.loads(shown.output)["totals"]["read"] == 26
    logs = run(jobs_app, server, "logs", job["id"], "--tail", "1")
    assert logs.output.strip().endswith("succeeded")
    followed = run(jobs_app, server, "logs", job["id"], "--follow")
    assert "attempt 1 starting" in followed.output

    finished = run(jobs_app, server, "cancel", job["id"])
    assert finished.exit_code == 2 and "already succeeded" in finished.output
    bad = run(jobs_app, server, "show", job["id"], token="wrong-token-wrong-token")
    assert bad.exit_code == EXIT_AUTH and "HTTP 401" in bad.output
    unknown = run(jobs_app, server, "show", "no-such-job")
    assert unknown.exit_code == EXIT_NOT_FOUND, unknown.output
    unreachable = runner.invoke(jobs_app, ["list", "--url", f"http://127.0.0.1:{free_port()}"])
    assert (
        unreachable.exit_code == EXIT_UNREACHABLE and "cannot reach the curate service" in unreachable.output
    )
    config.write_text(yaml.safe_dump({"inputs": [{"path": "jobs-in/*.jsonl.gz", "bogus": 1}]}))
    invalid = run(jobs_app, server, "submit", str(config))
    assert invalid.exit_code == 2 and "error: body.config.inputs.0.bogus: unknown key" in invalid.output


def test_schedules_commands(server: Server, tmp_path: Path) -> None:
    spec = tmp_path / "schedule.yaml"
    pipeline = curate_config("cli-in/*.jsonl.gz", "cli-corpus", dedup={"index": "cli-index"})
    spec.write_text(yaml.safe_dump({"name": "cli", "cron": "0 3 * * *", "pipeline": pipeline}))
    created = run(schedules_app, server, "create", str(spec))
    assert created.exit_code == 0 and created.output.startswith("cli: next run ")
    assert "cli" in run(schedules_app, server, "list").output
    assert [s["name"] for s in json.loads(run(schedules_app, server, "list", "--json").output)] == ["cli"]
    assert json.loads(run(schedules_app, server, "show", "cli").output)["cron"] == "0 3 * * *"
    assert run(schedules_app, server, "run", "cli").output.startswith("nothing_new")
    assert run(schedules_app, server, "delete", "cli").output.strip() == "deleted cli"
    missing = run(schedules_app, server, "delete", "cli")
    assert missing.exit_code == EXIT_NOT_FOUND and "no schedule cli" in missing.output
    spec.write_text("- a list, not a schedule\n")
    not_mapping = runner.invoke(root_app, ["schedules", "create", str(spec), "--url", server.url])
    assert not_mapping.exit_code == 2 and "expected a mapping at the top" in not_mapping.output

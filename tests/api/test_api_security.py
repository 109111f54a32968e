"""The security rules against a real server: token, data roots (`..`, symlinks), body size, binding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_harness import Server, curate_config, free_port, make_shards

from api.settings import load_token
from curate.errors import ConfigError

JSON = {"Content-Type": "application/json"}


def auth(server: Server, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or server.token}"}


def post(server: Server, body: Any = None, token: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = {**auth(server, token), **kwargs.pop("headers", {})}
    return httpx.post(server.url + "/v1/jobs", json=body, headers=headers, timeout=30, **kwargs)


def test_bearer_token_is_required(server: Server) -> None:
    assert httpx.get(server.url + "/healthz").status_code == 200  # liveness stays open
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": server.token}):
        response = httpx.get(server.url + "/v1/jobs", headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert httpx.post(server.url + "/v1/jobs", json={"kind": "curate", "config": {}}).status_code == 401
    assert httpx.post(server.url + "/v1/schedules/x/run").status_code == 401
    for route in ("/v1/jobs", "/v1/schedules"):  # auth comes before the body is even parsed
        malformed = httpx.post(server.url + route, content=b"{not json", headers=JSON)
        assert malformed.status_code == 401, (route, malformed.text)
        assert malformed.json() == {"detail": "missing or wrong bearer token"}
    authorised = post(server, content=b"{not json", headers=JSON)
    assert authorised.status_code == 422
    ok = httpx.get(server.url + "/v1/jobs", headers={"Authorization": f"Bearer {server.token}"})
    assert ok.status_code == 200


def test_paths_must_stay_inside_the_data_roots(
    server: Server, data_root: Path, tmp_path: Path, texts: dict
) -> None:
    outside = tmp_path / "outside"
    make_shards(outside, texts["news"][:4], per_shard=4, bad=False)
    make_shards(data_root / "inside", texts["news"][:4], per_shard=4, bad=False)
    (data_root / "escape-dir").symlink_to(outside)  # a folder symlink pointing out of the root
    (data_root / "inside" / "escape.jsonl.gz").symlink_to(outside / "part-000.jsonl.gz")  # a file symlink
    cases = {
        "absolute": (curate_config(str(outside / "*.jsonl.gz")), ["inputs", 0, "path"]),
        "dotdot": (curate_config("inside/../../outside/*.jsonl.gz"), ["inputs", 0, "path"]),
        "dir symlink": (curate_config("escape-dir/*.jsonl.gz"), ["inputs", 0, "path"]),
        "file symlink in a glob": (curate_config("inside/*.jsonl.gz"), ["inputs", 0, "path"]),
        "output": (curate_config("inside/part-*.jsonl.gz", str(outside / "out")), ["output"]),
        "output via symlink": (curate_config("inside/part-*.jsonl.gz", "escape-dir/out"), ["output"]),
        "dedup index": (
            curate_config("inside/part-*.jsonl.gz", dedup={"index": "/tmp/idx"}),
            ["dedup", "index"],
        ),
    }
    for name, (config, loc) in cases.items():
        response = post(server, {"kind": "curate", "config": config})
        assert response.status_code == 422, (name, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", "config", *loc], name
    assert not (outside / "out").exists()
    allowed = post(server, {"kind": "curate", "config": curate_config("inside/part-*.jsonl.gz")})
    assert allowed.status_code == 201, allowed.text
    httpx.post(
        f"{server.url}/v1/jobs/{allowed.json()['id']}/cancel",
        headers={"Authorization": f"Bearer {server.token}"},
    )


def test_unusable_paths_are_refused(server: Server, data_root: Path) -> None:
    """A NUL byte, a name longer than the file system allows, a path longer than PATH_MAX."""
    cases = {
        "nul": ("inside/a\0b/*.jsonl.gz", "NUL byte"),
        "long name": ("inside/" + "n" * 256 + "/*.jsonl.gz", "too long"),
        "long path": ("inside/" + "/".join(["d" * 200] * 25) + "/*.jsonl.gz", "too long"),
    }
    for name, (pattern, reason) in cases.items():
        response = post(server, {"kind": "curate", "config": curate_config(pattern)})
        assert response.status_code == 422, (name, response.text)
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", "config", "inputs", 0, "path"] and reason in detail["msg"], name


def test_stage_paths_are_confined_without_telling_what_exists(
    server: Server, data_root: Path, tmp_path: Path, texts: dict
) -> None:
    """A stage's models_dir outside the roots is refused before the stage looks for its model, with the
    same answer whether something is there or not; inside a root, the model lookup then runs."""
    make_shards(data_root / "stage-paths", texts["news"][:4], per_shard=4, bad=False)

    def submit(*stages: dict[str, Any]) -> httpx.Response:
        config = curate_config("stage-paths/*.jsonl.gz", stages=[{"normalize": {}}, *stages])
        return post(server, {"kind": "curate", "config": config})

    present = tmp_path / "present"
    (present / "toxicity").mkdir(parents=True)
    (present / "toxicity" / "card.json").write_text('{"name": "toxicity", "kind": "fasttext-toxicity"}')
    answers = {}
    for name, models_dir in {"present": present, "absent": tmp_path / "absent"}.items():
        response = submit({"toxicity": {"models_dir": str(models_dir), "fallback": "error"}})
        assert response.status_code == 422, (name, response.text)
        (detail,) = response.json()["detail"]
        assert detail["loc"] == ["body", "config", "stages", 1, "toxicity", "models_dir"], name
        answers[name] = detail["msg"].replace(str(models_dir), "DIR")
    assert answers["present"] == answers["absent"] and "outside the data roots" in answers["present"]
    inside = submit({"toxicity": {"models_dir": "models-here", "fallback": "error"}})
    assert inside.status_code == 422 and f"not in {data_root.resolve()}/models-here" in inside.text
    card = {"name": "toxicity", "kind": "fasttext-toxicity", "files": {}}
    (data_root / "models-inside" / "toxicity").mkdir(parents=True)
    (data_root / "models-inside" / "toxicity" / "card.json").write_text(json.dumps(card))
    found = submit({"toxicity": {"models_dir": "models-inside", "fallback": "error"}})  # relative to the root
    assert found.status_code == 201, found.text
    httpx.post(f"{server.url}/v1/jobs/{found.json()['id']}/cancel", headers=auth(server), timeout=30)
    words = submit({"heuristics": {"c4": {"bad_words_file": "/etc/passwd"}}})
    assert words.status_code == 422, words.text
    assert words.json()["detail"][0]["loc"][-3:] == ["heuristics", "c4", "bad_words_file"]


def test_request_bodies_are_limited(server: Server) -> None:
    big = {"kind": "curate", "config": {"inputs": [{"path": "x" * 2_000_000}]}}
    assert post(server, big).status_code == 413

    def chunks():  # no Content-Length: the limit must hold for streamed bodies too
        yield b'{"kind": "curate", "config": {"pad": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}}'

    streamed = post(server, content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    small = post(
        server,
        content=iter([b'{"kind": "curate", "config": {}}']),
        headers={"Content-Type": "application/json"},
    )
    assert small.status_code == 422  # a small streamed body still reaches validation


def test_cross_site_requests_are_refused(server: Server) -> None:
    """What a hostile web page can send to a local server: a cross-origin fetch or a form post."""
    body = {"kind": "curate", "config": {"inputs": [{"path": "inside/part-*.jsonl.gz"}]}}
    foreign = post(server, body, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    form_like = post(server, content=json.dumps(body).encode(), headers={"Content-Type": "text/plain"})
    assert form_like.status_code == 422  # a simple (no-preflight) content type never reaches a job
    own = post(server, {"kind": "nope", "config": {}}, headers={"Origin": server.url})
    assert own.status_code == 422


def test_non_loopback_bind_without_token_is_refused(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATE_API_")}
    command = [
        sys.executable,
        "-m",
        "api.server",
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--state-dir",
        str(tmp_path / "state"),
        "--data-root",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without an API token" in result.stderr
    assert "Traceback" not in result.stderr


def test_loopback_without_token_refuses_foreign_host_headers(tmp_path: Path) -> None:
    server = Server(tmp_path / "state", tmp_path, token=None).start()
    try:
        assert httpx.get(server.url + "/v1/jobs").status_code == 200  # no token configured: loopback only
        rebound = httpx.get(server.url + "/v1/jobs", headers={"Host": f"evil.example:{server.port}"})
        assert rebound.status_code == 421
    finally:
        server.stop()


def test_token_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit token, else --token-file, else $CURATE_API_TOKEN_FILE, else $CURATE_API_TOKEN."""
    option, env_file = tmp_path / "option", tmp_path / "env-file"
    option.write_text("from-the-option-file-0123\n")
    env_file.write_text("from-the-env-file-0123456\n")
    monkeypatch.setenv("CURATE_API_TOKEN", "from-the-env-0123456789")
    monkeypatch.setenv("CURATE_API_TOKEN_FILE", str(env_file))
    assert load_token("explicit-token-0123456789", option) == "explicit-token-0123456789"
    assert load_token(None, option) == "from-the-option-file-0123"
    assert load_token(None, None) == "from-the-env-file-0123456"
    monkeypatch.delenv("CURATE_API_TOKEN_FILE")
    assert load_token(None, None) == "from-the-env-0123456789"
    monkeypatch.setenv("CURATE_API_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="token file .*missing does not exist"):
        load_token(None, None)
    with pytest.raises(ConfigError, match="at least 16"):
        load_token("short", None)

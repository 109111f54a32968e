"""The real thing, small: a uvicorn server process on a free loopback port, and shards of real text.

Text comes from packages (gensim's Wikipedia pages and news, the standard library as code), cut into
small shards so a job takes a second or two of CPU on the shared test machine.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from api.client import ApiClient

TOKEN = "test-token-0123456789abcdef"
DOC_CHARS = 3000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Server:
    """`python -m api.server` in its own process, as an operator would run it."""

    def __init__(
        self,
        state_dir: Path,
        data_root: Path,
        token: str | None = TOKEN,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        """`token` is what clients send; `env` (default: $CURATE_API_TOKEN = token) is the server's own."""
        self.state_dir, self.data_root, self.token, self.extra = state_dir, data_root, token, extra
        self.extra_env = env if env is not None else ({"CURATE_API_TOKEN": token} if token else {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = state_dir.parent / f"server-{self.port}.log"

    def command(self, host: str = "127.0.0.1") -> list[str]:
        return [
            sys.executable, "-m", "api.server", "--host", host, "--port", str(self.port),
            "--state-dir", str(self.state_dir), "--data-root", str(self.data_root), "--log-level", "warning",
            *self.extra,
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CURATE_API_")}
        return {**env, **self.extra_env}

    def start(self, timeout: float = 60) -> Server:
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.env()
            )
        wait_for(self._ready, timeout, f"the server on port {self.port} (log: {self.log})", poll=0.1)
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"server exited with {self.process.returncode}: {self.log.read_text()[-2000:]}"
            )
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def client(self) -> ApiClient:
        return ApiClient(self.url, self.token)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


def write_jsonl_gz(path: Path, records: list[dict[str, Any]], extra_lines: list[bytes] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        for record in records:
            handle.write(json.dumps(record).encode() + b"\n")
        for line in extra_lines:
            handle.write(line + b"\n")
    return path


def make_shards(
    folder: Path, docs: list[dict[str, Any]], per_shard: int, prefix: str = "part", bad: bool = True
) -> list[Path]:
    """Shards of `per_shard` docs; with `bad`, the first shard also holds an empty and a malformed record
    (so the funnel shows `empty` and `unreadable` drops)."""
    paths = []
    for index, start in enumerate(range(0, len(docs), per_shard)):
        extra = (
            [b'{"text": "\\u200b \\u200b", "url": "https://example.org/blank"}', b"{not json"]
            if bad and index == 0
            else []
        )
        paths.append(
            write_jsonl_gz(folder / f"{prefix}-{index:03d}.jsonl.gz", docs[start : start + per_shard], extra)
        )
    return paths


def curate_config(pattern: str, output: str | None = None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "inputs": [{"path": pattern, "name": "wiki", "domain": "wiki"}],
        "stages": [
            {"normalize": {}},
            {"tag": {"domain": {"default": "web", "rules": [{"domain": "wiki", "site": "wikipedia.org"}]}}},
        ],
        **extra,
    }
    if output is not None:
        config["output"] = output
    return config


def mix_spec(corpus: str, **overrides: Any) -> dict[str, Any]:
    return {"corpora": [corpus], "budget": 8000, "tokenizer": {"chars_per_token": 4.0},
            "domains": {"wiki": 1.0}, **overrides}  # fmt: skip


def corpus_rows(out: Path) -> pa.Table:
    """Every kept and rejected row of an output, sorted by (source, id): what "equal output" compares."""
    tables = []
    for part in sorted(out.glob("corpus/**/*.parquet")) + sorted(out.glob("rejects/*.parquet")):
        table = pq.read_table(part)
        kind = "rejects" if part.parent.name == "rejects" else part.parent.name
        table = table.select(["id", "source", "text"]).append_column(
            "where", pa.array([kind] * table.num_rows)
        )
        tables.append(table)
    rows = pa.concat_tables(tables)
    return rows.sort_by([("source", "ascending"), ("id", "ascending"), ("where", "ascending")])


def files_under(out: Path, sub: str) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in (out / sub).rglob("*") if p.is_file())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False

"""`curate bench api`: N concurrent clients polling a job's status for S seconds while the job runs.

A benchmark, not a test: it prints JSON figures (requests/s, latency percentiles, errors) for
BENCHMARKS.md. Everything stays on this machine: the server is started on a free 127.0.0.1 port in a
temporary folder, the job curates package-shipped text, and the request loop is bounded in time.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.machine import machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _poll(
    client: httpx.AsyncClient, path: str, until: float, latencies: list[float], errors: list[str]
) -> None:
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            response = await client.get(path)
            if response.status_code != 200:
                errors.append(f"HTTP {response.status_code}")
        except httpx.HTTPError as error:
            errors.append(type(error).__name__)
        latencies.append(time.perf_counter() - started)


async def _load(
    url: str, token: str, path: str, clients: int, seconds: float
) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        until = time.perf_counter() + seconds
        await asyncio.gather(*(_poll(client, path, until, latencies, errors) for _ in range(clients)))
    return latencies, errors


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _start_server(folder: Path, token: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "CURATE_API_TOKEN": token}
    command = [
        sys.executable, "-m", "api.server", "--port", str(port), "--state-dir", str(folder / "state"),
        "--data-root", str(folder / "data"), "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the benchmark server did not start")


def bench_api(clients: int = 50, seconds: float = 30.0) -> dict[str, Any]:
    """Poll GET /v1/jobs/{id} from `clients` concurrent connections for `seconds` while a job runs."""
    from api.demo import build_package_shards

    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="curate-bench-api-") as tmp:
        folder = Path(tmp)
        build_package_shards(folder / "data" / "shards")
        process, url = _start_server(folder, token)
        try:
            config = {
                "inputs": [{"path": "shards/*.jsonl.*", "name": "pkg"}],
                "stages": [{"normalize": {}}, {"tag": {"domain": {"default": "web"}}}],
            }
            headers = {"Authorization": f"Bearer {token}"}
            job = httpx.post(
                url + "/v1/jobs", json={"kind": "curate", "config": config}, headers=headers
            ).json()
            latencies, errors = asyncio.run(_load(url, token, f"/v1/jobs/{job['id']}", clients, seconds))
            final = httpx.get(f"{url}/v1/jobs/{job['id']}", headers=headers).json()
        finally:
            process.terminate()
            process.wait(timeout=30)
    return {
        "benchmark": "api status polling under load",
        "machine": machine(),
        "clients": clients,
        "seconds": seconds,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "latency_ms": {
            q: round(_percentile(latencies, p) * 1000, 1) for q, p in (("p50", 0.5), ("p99", 0.99))
        },
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "job_state_at_end": final["state"],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(bench_api(), indent=2))

"""`curate bench api`: N concurrent clients polling a job's status for S seconds while the job runs.

Two phases, each over a freshly submitted curation job: `paced`, every client polling once per
1/`rate` seconds (what a fleet of dashboards and CLIs does; the figure that matters is p99 latency), then
`saturation`, every client polling as fast as it can (the ceiling). For each, the server process's own
CPU seconds (from /proc, job workers excluded) give the CPU cost per request and so the saturation rate
in requests/s per core, independent of what else the machine runs. `summary` holds the headline figures
and the 1-minute load average at the end of each phase (latency is only comparable at equal load).

A benchmark, not a test: it prints JSON figures (requests/s, latency percentiles, errors) for
BENCHMARKS.md. Everything stays on this machine: the server is started on a free 127.0.0.1 port in a
temporary folder, the job curates package-shipped text (hard-linked `JOB_COPIES` times, so it outlasts
a phase), and the request loop is bounded in time.
"""

from __future__ import annotations

import asyncio
import os
import random
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
    client: httpx.AsyncClient,
    path: str,
    until: float,
    interval: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    await asyncio.sleep(random.uniform(0, interval))  # clients that started together do not poll in step
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            response = await client.get(path)
            if response.status_code != 200:
                errors.append(f"HTTP {response.status_code}")
        except httpx.HTTPError as error:
            errors.append(type(error).__name__)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))


async def _load(
    url: str, token: str, path: str, clients: int, seconds: float, interval: float
) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        until = time.perf_counter() + seconds
        polls = (_poll(client, path, until, interval, latencies, errors) for _ in range(clients))
        await asyncio.gather(*polls)
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


JOB_CONFIG = {
    "inputs": [{"path": "shards/*.jsonl.*", "name": "pkg"}],
    "stages": [
        {"normalize": {}},
        {"tag": {"domain": {"default": "web"}}},
        {"heuristics": {"mode": "annotate"}},
    ],
}


JOB_COPIES = 12  # the package shards, hard-linked under other names: a job that outlasts a phase


def repeat_shards(folder: Path, copies: int) -> None:
    """More shards of the same text, so the polled job is still running when a phase ends."""
    for shard in sorted(folder.glob("*.jsonl.*")):
        for index in range(1, copies):
            os.link(shard, folder / f"copy{index}-{shard.name}")


QUANTILES = (("p50", 0.5), ("p99", 0.99), ("max", 1.0))


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU of the server process itself (its job workers are other processes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_phase(
    url: str, token: str, pid: int, clients: int, seconds: float, interval: float
) -> dict[str, Any]:
    """Submit a job, poll its status from `clients` connections for `seconds`, measure the server."""
    headers = {"Authorization": f"Bearer {token}"}
    job = httpx.post(url + "/v1/jobs", json={"kind": "curate", "config": JOB_CONFIG}, headers=headers).json()
    cpu_before = server_cpu_seconds(pid)
    latencies, errors = asyncio.run(_load(url, token, f"/v1/jobs/{job['id']}", clients, seconds, interval))
    cpu = server_cpu_seconds(pid) - cpu_before
    final = httpx.get(f"{url}/v1/jobs/{job['id']}", headers=headers).json()
    cpu_ms = 1000 * cpu / len(latencies) if latencies else float("nan")
    return {
        "poll_interval_s": interval,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "latency_ms": {q: round(_percentile(latencies, p) * 1000, 1) for q, p in QUANTILES},
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "server_cpu_ms_per_request": round(cpu_ms, 3),
        "requests_per_s_per_core": round(1000 / cpu_ms, 1) if cpu_ms > 0 else None,
        "job_state_at_end": final["state"],
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def bench_api(clients: int = 50, seconds: float = 30.0, rate: float = 1.0) -> dict[str, Any]:
    """The paced phase (each client `rate` polls/s), then the saturation phase, against one server."""
    from api.demo import build_package_shards

    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="curate-bench-api-") as tmp:
        folder = Path(tmp)
        build_package_shards(folder / "data" / "shards")
        repeat_shards(folder / "data" / "shards", JOB_COPIES)
        process, url = _start_server(folder, token)
        try:
            paced = run_phase(url, token, process.pid, clients, seconds, 1.0 / rate)
            saturation = run_phase(url, token, process.pid, clients, seconds, 0.0)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return {
        "benchmark": "api status polling (GET /v1/jobs/{id}) while a curation job runs",
        "machine": machine(),
        "clients": clients,
        "seconds_per_phase": seconds,
        "summary": {
            "paced_p50_ms": paced["latency_ms"]["p50"],
            "paced_p99_ms": paced["latency_ms"]["p99"],
            "paced_errors": paced["errors"],
            "paced_server_cpu_ms_per_request": paced["server_cpu_ms_per_request"],
            "saturation_requests_per_s_per_core": saturation["requests_per_s_per_core"],
            "load_average_1m": [paced["load_average_1m"], saturation["load_average_1m"]],
        },
        "paced": paced,
        "saturation": saturation,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(bench_api(), indent=2))

"""A Ray cluster of several nodes on this machine, started as an operator starts one, for tests.

Each node is a `ray start --block` process (`--head`, or `--address` of the head) with its own temp dir,
free ports and environment, the leader of its own process group. Stopping signals those groups and then
any process whose environment carries this cluster's marker (Ray workers start their own groups), by PID:
never `ray stop`, which would stop every Ray on the machine, including other tests' clusters. Ray's token
authentication is off: every port is bound on this machine for the test's lifetime only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MARKER_ENV = "CURATE_TEST_RAY_CLUSTER"
RAY = str(Path(sys.executable).with_name("ray"))
STARTED = "Ray runtime started"
FAST_NODE_DEATH = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
"""The head declares a silent node dead after ~1.5 s (default ~15 s), so a test of losing one is short."""
ATTEMPTS = (1, 2)
"""A node is launched a second time if the first gives up: on a loaded machine Ray's fixed 30 s wait for a
raylet to register can lapse (seen here while other jobs compiled), which says nothing of the code tested."""
NODE_PORT_OPTIONS = (
    "--node-manager-port",
    "--object-manager-port",
    "--runtime-env-agent-port",
    "--dashboard-agent-grpc-port",
    "--dashboard-agent-listen-port",
    "--metrics-export-port",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RayNode:
    name: str
    process: subprocess.Popen
    log: Path

    def raylet_pid(self) -> int:
        """The node's raylet: the `raylet` child of its `ray start` process (killing it kills the node)."""
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            command, fields = text.split("(", 1)[1].rsplit(")", 1)
            if command == "raylet" and int(fields.split()[1]) == self.process.pid:
                return int(stat.parent.name)
        raise LookupError(f"node {self.name} has no raylet child (ray start pid {self.process.pid})")


class LocalCluster:
    """`start_head()`, then `add_workers(...)`; `stop()` in a finally."""

    def __init__(self, env: dict[str, str]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))  # short: Ray's socket paths must fit
        self.marker = f"{MARKER_ENV}={self.root}"
        self.env = {
            **env,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "disabled",
            MARKER_ENV: str(self.root),
        }
        self.nodes: list[RayNode] = []
        self.address = ""

    def start_head(self) -> str:
        for attempt in ATTEMPTS:
            port = free_port()
            head_options = ["--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false"]
            head = self._launch(
                "head", head_options + [f"--system-config={json.dumps(FAST_NODE_DEATH)}"], {}, attempt
            )
            if self._started(head):
                self.address = f"127.0.0.1:{port}"
                return self.address
        raise RuntimeError(f"the Ray head did not start:\n{head.log.read_text()[-3000:]}")

    def add_workers(self, cpus: int, envs: dict[str, dict[str, str]]) -> list[RayNode]:
        """One worker node per name in `envs`, with that environment, started side by side."""
        options = [f"--address={self.address}", f"--num-cpus={cpus}"]
        nodes = [self._launch(name, options, env, ATTEMPTS[0]) for name, env in envs.items()]
        for index, (name, env) in enumerate(envs.items()):
            if not self._started(nodes[index]):
                nodes[index] = self._launch(name, options, env, ATTEMPTS[1])
                if not self._started(nodes[index]):
                    raise RuntimeError(
                        f"ray node {name} did not start:\n{nodes[index].log.read_text()[-3000:]}"
                    )
        return nodes

    def node_dir(self, name: str) -> Path:
        return self.root / name

    def _launch(self, name: str, options: list[str], env: dict[str, str], attempt: int) -> RayNode:
        folder = self.node_dir(name)
        folder.mkdir(exist_ok=True)
        command = [
            RAY,
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={folder / f'ray-{attempt}'}",
        ]
        command += ["--disable-usage-stats", "--min-worker-port=0", "--max-worker-port=0"]
        command += [f"{option}={free_port()}" for option in NODE_PORT_OPTIONS] + options
        log = folder / f"ray-start-{attempt}.log"
        with open(log, "w") as handle:
            process = subprocess.Popen(
                command,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**self.env, **env},
                start_new_session=True,
            )
        node = RayNode(name, process, log)
        self.nodes.append(node)
        return node

    def _started(self, node: RayNode, timeout: float = 120) -> bool:
        """True once `ray start` says so; False (its processes killed) if it gave up or took too long."""
        deadline = time.monotonic() + timeout
        while STARTED not in node.log.read_text(errors="replace"):
            if node.process.poll() is not None or time.monotonic() > deadline:
                _signal_group(node.process.pid, signal.SIGKILL)
                return False
            time.sleep(0.2)
        return True

    def stop(self) -> None:
        """Kill, not drain: a test cluster holds nothing worth a graceful stop (Ray drains for up to 30 s)."""
        for node in self.nodes:
            _signal_group(node.process.pid, signal.SIGKILL)
            node.process.wait(timeout=30)
        for pid in self.leftover_pids():
            _signal(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def leftover_pids(self) -> list[int]:
        """Processes of this cluster outside its groups (Ray workers): their environment has its marker."""
        marker = self.marker.encode() + b"\0"
        pids = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                if marker in environ.read_bytes() and int(environ.parent.name) != os.getpid():
                    pids.append(int(environ.parent.name))
            except OSError:
                continue
        return pids


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)

"""Ray runs on a real cluster (a head and two worker nodes started on this machine with `ray start`) whose
workers cannot lean on the driver's files: the model reaches them through the object store even when the
driver's copy is deleted once packed, and `curate run`, with inputs and output on an S3 server, survives
losing a worker node in the middle of a shard. Each run's corpus and rejects Parquet files are compared,
byte for byte, with a local run's.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from curate.config import load_config
from curate.errors import ConfigError
from curate.executors.ray_executor import ray_session, run_shipped
from curate.executors.shipping import MODEL_CACHE_ENV, pack_folder, ship_stage_files
from curate.plan import build_plan
from curate.run import run_pipeline
from curate.shard_runner import STATE_DIR
from curate.storage import Location, files_under, location
from tests.conftest import REPO
from tests.core.helpers import write_config
from tests.core.pause_stage import NODE_ENV, PauseParams, install_pause_stage
from tests.core.ray_cluster import LocalCluster
from tests.core.tiny_models import train_tiny_toxicity
from tests.s3_server import S3Server

MODEL = "tiny-toxicity"


BLOCKLIST = "blocklist.txt"  # beside the models home: a file a stage's params name, shipped like the models
BLOCKED_SITES = "100women.ng\nblogspot.com\n"  # sites of Dolma CC pages in web/*.jsonl


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    root = tmp_path_factory.mktemp("models")
    train_tiny_toxicity(shared, root / "home", MODEL)
    (root / BLOCKLIST).write_text(BLOCKED_SITES)
    return root / "home"


def pipeline(folder: Path, web: Path | str, models: Path, out: str, pause: PauseParams | None = None) -> Path:
    """Seven real web shards through normalize, a URL blocklist (the file beside `models`), a pause and
    the toxicity model (both drop some); `web` and `out` may be object-store URLs."""
    config = {
        "inputs": [{"path": f"{web}/*.jsonl", "name": "web"}],
        "stages": [
            {"normalize": {}},
            {"url_filter": {"lists": {"blocked": {"domains": str(models.parent / BLOCKLIST)}}}},
            {"pause": (pause or PauseParams()).model_dump(mode="json", exclude_none=True)},
            {"toxicity": {"model": MODEL, "models_dir": str(models), "max_toxicity": 0.5}},
        ],
        "output": out if "://" in out else str(folder / out),
    }
    return write_config(folder, config, f"{out.rsplit('/', 1)[-1]}.yaml")


def parquet_files(out: Path) -> dict[str, bytes]:
    return {
        path.relative_to(out).as_posix(): path.read_bytes()
        for folder in ("corpus", "rejects")
        for path in sorted((out / folder).rglob("*.parquet"))
    }


@pytest.fixture(scope="module")
def local_files(tmp_path_factory: pytest.TempPathFactory, web: Path, models: Path) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("local")
    manifest = run_pipeline(load_config(pipeline(folder, web, models, "local")), "local", 1, progress=False)
    dropped = {stage["stage"]: stage["dropped"] for stage in manifest["stages"]}
    assert dropped["toxicity"].get("toxicity:above_max", 0) > 0, "the comparison should cover rejects"
    assert dropped["url_filter"].get("url_filter:blocked", 0) > 0, "and rejects by the shipped list"
    return parquet_files(folder / "local")


def test_a_model_folder_gone_before_packing_is_one_config_line(
    tmp_path: Path, web: Path, models: Path
) -> None:
    driver_copy = tmp_path / "driver-models"
    shutil.copytree(models, driver_copy)
    shutil.copy(models.parent / BLOCKLIST, tmp_path / BLOCKLIST)
    plan = build_plan(load_config(pipeline(tmp_path, web, driver_copy, "gone")))
    shutil.rmtree(driver_copy / MODEL)
    with pytest.raises(
        ConfigError, match=f"stage 'toxicity' reads model folder {driver_copy / MODEL}, which is gone"
    ):
        ship_stage_files(plan)
    assert not ray.is_initialized(), "a refused shipment starts no Ray (a ray.put would)"


SHARDS = 7  # web/*.jsonl
PAUSE = 1.5  # seconds per batch in the run that loses a node: it must be mid-shard when the kill lands
WORKER_NODES = ("node1", "node2")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[LocalCluster]:
    """A head without CPUs and two 2-CPU worker nodes, each with its own model cache, all running with
    this repository and the `pause` stage on the path (`cluster.env`, the driver's environment too), and
    the S3 server's credentials and endpoint in their environment, as a real cluster's nodes would have."""
    site = install_pause_stage(tmp_path_factory.mktemp("site"))
    cluster = LocalCluster({**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(site)])})
    try:
        cluster.start_head()
        cluster.add_workers(
            2, {name: {NODE_ENV: name, MODEL_CACHE_ENV: str(cache(cluster, name))} for name in WORKER_NODES}
        )
        yield cluster
    finally:
        cluster.stop()


def cache(cluster: LocalCluster, node: str) -> Path:
    return cluster.node_dir(node) / "models"


@pytest.mark.cluster
def test_cluster_actors_load_the_shipped_model_after_the_drivers_folder_is_gone(
    tmp_path: Path,
    web: Path,
    models: Path,
    local_files: dict[str, bytes],
    cluster: LocalCluster,
) -> None:
    driver_copy = tmp_path / "driver-models"
    shutil.copytree(models, driver_copy)
    shutil.copy(models.parent / BLOCKLIST, tmp_path / BLOCKLIST)
    plan = build_plan(load_config(pipeline(tmp_path, web, driver_copy, "shipped")))
    with ray_session(2, cluster.address):
        shipment = ship_stage_files(plan)
        shutil.rmtree(driver_copy)  # from here on, only the shipped bytes hold the model and the list
        (tmp_path / BLOCKLIST).unlink()
        run_shipped(plan, plan.tasks, 2, lambda report: None, shipment)
    assert parquet_files(tmp_path / "shipped") == local_files
    checksum = hashlib.sha256(pack_folder(models / MODEL)).hexdigest()
    assert shipment.stage_homes == [{}, {}, {}, {MODEL: checksum}]
    (blocklist,) = shipment.stage_paths[1].values()
    assert blocklist.inside == BLOCKLIST and set(shipment.archives) == {checksum, blocklist.checksum}
    # Actors are spread over the nodes, best effort: every node that ran one unpacked the model once
    used = [node for node in WORKER_NODES if (cache(cluster, node) / checksum).is_dir()]
    assert used, "the shipped model was unpacked on the worker nodes"
    for node in used:
        unpacked = cache(cluster, node) / checksum
        assert sorted(p.name for p in unpacked.iterdir()) == ["card.json", "model.bin"], node
        (home,) = cache(cluster, node).glob("home-*")
        assert (home / MODEL).resolve() == unpacked.resolve()
        assert (cache(cluster, node) / blocklist.checksum / BLOCKLIST).read_text() == BLOCKED_SITES


def curate_run(config: Path, address: str) -> list[str]:
    """The command a user types on the driver machine, as `python -m api.main` (== `curate`)."""
    options = ["--executor", "ray", "--ray-address", address, "--workers", "2"]
    return [sys.executable, "-m", "api.main", "run", str(config), *options]


@pytest.mark.cluster
def test_curate_run_on_the_cluster_matches_local_though_a_worker_node_is_killed_mid_shard(
    tmp_path: Path,
    web: Path,
    models: Path,
    local_files: dict[str, bytes],
    cluster: LocalCluster,
    s3_server: S3Server,
) -> None:
    """Inputs and output on the S3 server: no node reads or writes a path of another."""
    bucket = s3_server.bucket()
    s3_server.upload(web, f"{bucket}/web")
    trace = tmp_path / "trace.txt"
    out = f"{bucket}/killed"
    config = pipeline(tmp_path, f"{bucket}/web", models, out, PauseParams(seconds=PAUSE, trace=trace))
    command = curate_run(config, cluster.address)
    run = subprocess.Popen(
        command, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        victim = cluster.nodes[-1]
        wait_until_mid_shard(location(out), trace, victim.name, run)
        os.kill(victim.raylet_pid(), signal.SIGKILL)
        _, stderr = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode == 0, stderr[-3000:]
    fetched = tmp_path / "fetched"
    location(out).fs.get(location(out).path + "/", str(fetched), recursive=True)
    assert parquet_files(fetched) == local_files
    assert redone_on_another_node(trace, victim.name), trace.read_text()


def wait_until_mid_shard(
    out: Location, trace: Path, node: str, run: subprocess.Popen, timeout: float = 180
) -> None:
    """Returns the moment `node` starts a batch (its actor then sleeps PAUSE seconds inside a shard) after
    at least one shard is complete and while some are not: the kill lands mid-run and mid-shard."""
    records = out / STATE_DIR
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        if run.poll() is not None:
            raise AssertionError(
                f"the run ended before the node could be killed: {run.communicate()[1][-3000:]}"
            )
        complete = len(files_under(records, "*.json"))
        assert complete < SHARDS, "the run ended before the node could be killed"
        started = trace_lines(trace, node)
        if complete and seen is None:
            seen = len(started)
        elif seen is not None and len(started) > seen:
            return
        time.sleep(0.05)
    raise AssertionError(f"{node} started no batch after the first shard completed:\n{trace.read_text()}")


def trace_lines(trace: Path, node: str | None = None) -> list[list[str]]:
    lines = [line.split() for line in trace.read_text().splitlines()] if trace.exists() else []
    return [line for line in lines if node is None or line[0] == node]


def redone_on_another_node(trace: Path, victim: str) -> bool:
    """Some batch the killed node started was started again by a worker of another node."""
    on_victim = {doc_id for _, _, doc_id in trace_lines(trace, victim)}
    elsewhere = {doc_id for node, _, doc_id in trace_lines(trace) if node != victim}
    return bool(on_victim & elsewhere)

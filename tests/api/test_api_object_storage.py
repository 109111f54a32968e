"""The service with an object-store data root (a real S3 server on 127.0.0.1): a job reads and writes
under it, and loads its models from it; paths outside it, or climbing out of it, are refused at
submission as local paths are."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import s3fs
from api_harness import Server, curate_config, make_shards

from curate.textsources import shared_data_dir
from tests.core.tiny_models import train_tiny_toxicity
from tests.s3_server import S3Server


@pytest.fixture(scope="module")
def store(s3_server: S3Server) -> str:
    return s3_server.bucket()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, store: str) -> Iterator[Server]:
    local = tmp_path_factory.mktemp("local-root")
    mirror = {"CURATE_MODEL_MIRROR": str(tmp_path_factory.mktemp("mirror"))}
    server = Server(
        tmp_path_factory.mktemp("state"), local, extra=("--data-root", f"{store}/root"), env=mirror
    ).start()
    yield server
    server.stop()


def test_a_job_reads_and_writes_under_an_s3_data_root(
    served: Server,
    store: str,
    s3_server: S3Server,
    tmp_path: Path,
    texts: dict[str, list[dict[str, Any]]],
) -> None:
    make_shards(tmp_path / "raw", texts["wiki"][:24], per_shard=8)
    s3_server.upload(tmp_path / "raw", f"{store}/root/raw")
    with served.client() as api:
        job = api.submit_job("curate", curate_config(f"{store}/root/raw/*.jsonl.gz", f"{store}/root/out"))
        done = api.wait_job(job["id"], timeout=600)
    assert done["state"] == "succeeded", done
    fs = s3fs.S3FileSystem(endpoint_url=s3_server.endpoint)
    bucket = store.removeprefix("s3://")
    assert fs.exists(f"{bucket}/root/out/manifest.json")
    assert fs.glob(f"{bucket}/root/out/corpus/domain=*/part-*.parquet")
    assert done["result"]["totals"]["read"] == 24 + 2  # the first shard's empty and malformed records


def test_paths_outside_the_s3_data_root_are_refused(served: Server, store: str) -> None:
    bucket = store.removeprefix("s3://")
    cases = {
        "another prefix": curate_config(f"{store}/elsewhere/*.jsonl.gz", f"{store}/root/out2"),
        "a prefix that only starts alike": curate_config(f"{store}/rootless/*.jsonl.gz", f"{store}/root/o"),
        "climbing out": curate_config(f"{store}/root/../elsewhere/*.jsonl.gz", f"{store}/root/out3"),
        "another bucket": curate_config(f"s3://{bucket}x/root/raw/*.jsonl.gz", f"{store}/root/out4"),
        "output outside": curate_config(f"{store}/root/raw/*.jsonl.gz", f"{store}/out"),
    }
    with served.client() as api:
        for name, config in cases.items():
            response = api.http.post("/v1/jobs", json={"kind": "curate", "config": config})
            assert response.status_code == 422, (name, response.text)
            assert "data root" in response.text, (name, response.text)


def toxicity_config(store: str, models_dir: str, output: str) -> dict[str, Any]:
    config = curate_config(f"{store}/root/raw-models/*.jsonl.gz", output)
    config["stages"] = [{"normalize": {}}, {"toxicity": {"models_dir": models_dir, "fallback": "error"}}]
    return config


def test_a_job_loads_its_models_from_the_s3_data_root(
    served: Server,
    store: str,
    s3_server: S3Server,
    tmp_path: Path,
    texts: dict[str, list[dict[str, Any]]],
) -> None:
    """`models_dir` is judged as the URL the job names, not as the host's local mirror of it."""
    shared = shared_data_dir()
    if shared is None:
        pytest.skip("../shared/data (toxicity labels to train a tiny model) is absent")
    train_tiny_toxicity(shared, tmp_path / "models", "toxicity")
    s3_server.upload(tmp_path / "models", f"{store}/root/models")
    make_shards(tmp_path / "raw", texts["wiki"][:16], per_shard=8)
    s3_server.upload(tmp_path / "raw", f"{store}/root/raw-models")
    with served.client() as api:
        job = api.submit_job("curate", toxicity_config(store, f"{store}/root/models", f"{store}/root/out-m"))
        done = api.wait_job(job["id"], timeout=600)
        assert done["state"] == "succeeded", done  # `fallback: error`: no word-list run without the model
        outside = toxicity_config(store, f"{store}/elsewhere/models", f"{store}/root/out-m2")
        response = api.http.post("/v1/jobs", json={"kind": "curate", "config": outside})
    assert response.status_code == 422 and "data root" in response.text, response.text

"""Models on an object store (a real S3 protocol server on 127.0.0.1): `$CURATE_MODELS` or `models_dir`
as an s3:// URL gives the same run as the local folder; a re-trained model on the store is fetched again;
a model trained into an s3 home is uploaded; an unreadable store is one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import s3fs

from curate.textsources import shared_data_dir
from filters.model_mirror import local_home, source_url
from filters.model_registry import find_model, list_models
from tests.conftest import run_cli
from tests.core.helpers import write_config
from tests.core.tiny_models import train_tiny_toxicity
from tests.s3_server import S3Server

SHARED = shared_data_dir()
pytestmark = pytest.mark.skipif(SHARED is None, reason="../shared/data (toxicity labels, web text) is absent")
MODEL = "toxicity"


def corpus_files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "corpus").rglob("*.parquet"))
    }


def run(tmp_path: Path, name: str, env: dict[str, str], models_dir: str | None = None) -> dict[str, bytes]:
    assert SHARED is not None
    stage = {"max_toxicity": 0.5, **({"models_dir": models_dir} if models_dir else {})}
    config = {
        "inputs": [{"path": str(SHARED / "web" / "dolma_cc_en_head-*.jsonl"), "name": "web"}],
        "stages": [{"normalize": {}}, {"toxicity": stage}],
    }
    path = write_config(tmp_path, config, f"{name}.yaml")
    result = run_cli("run", str(path), "--out", str(tmp_path / name), env=env)
    assert result.returncode == 0, result.stderr
    return corpus_files(tmp_path / name)


def test_models_on_s3_read_through_the_mirror(tmp_path: Path, s3_server: S3Server, monkeypatch) -> None:
    assert SHARED is not None
    local = tmp_path / "models"
    train_tiny_toxicity(SHARED, local, MODEL)
    bucket = s3_server.bucket()
    s3_server.upload(local, f"{bucket}/models")
    mirror = tmp_path / "mirror"
    env = {**s3_server.env, "CURATE_MODEL_MIRROR": str(mirror)}

    expected = run(tmp_path, "local", {**env, "CURATE_MODELS": str(local)})
    assert run(tmp_path, "env-url", {**env, "CURATE_MODELS": f"{bucket}/models"}) == expected
    assert run(tmp_path, "param-url", env, models_dir=f"{bucket}/models") == expected
    mirrored = mirror / "s3" / bucket.removeprefix("s3://") / "models" / MODEL
    assert (mirrored / "card.json").read_bytes() == (local / MODEL / "card.json").read_bytes()

    monkeypatch.setenv("CURATE_MODEL_MIRROR", str(mirror))
    home = local_home(f"{bucket}/models")
    assert home == mirrored.parent.resolve() and source_url(home) == f"{bucket}/models"
    store = s3fs.S3FileSystem(endpoint_url=s3_server.endpoint)
    card = json.loads((local / MODEL / "card.json").read_text())
    card["created"] = "2030-01-01T00:00:00Z"  # the model re-trained on the store
    store.pipe(f"{bucket.removeprefix('s3://')}/models/{MODEL}/card.json", json.dumps(card).encode())
    found = find_model(MODEL, home)
    assert found is not None and found.card.created == "2030-01-01T00:00:00Z", "the mirror follows the store"

    train_tiny_toxicity(SHARED, home, "toxicity-2")  # trained into the s3 home: uploaded after commit
    assert store.exists(f"{bucket.removeprefix('s3://')}/models/toxicity-2/card.json")
    assert {c.name for c in list_models(home)} == {MODEL, "toxicity-2"}
    listed = run_cli("models", "list", "--home", f"{bucket}/models", "--json", env=env)
    assert listed.returncode == 0 and {m["name"] for m in json.loads(listed.stdout)} == {MODEL, "toxicity-2"}

    no_credentials = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    refused = run_cli(
        "models", "list", "--home", f"{bucket}/models", env={**no_credentials, "HOME": str(tmp_path)}
    )
    assert refused.returncode == 2 and f"models home {bucket}/models: cannot read it" in refused.stderr
    assert "Traceback" not in refused.stderr and os.environ.get("AWS_ENDPOINT_URL")

"""The same config gives the same corpus on the local executor (1 or 2 workers) and on a real Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.config import load_config
from curate.run import run_pipeline
from tests.core.helpers import read_parts, write_config

BAD_LINES = b'{"text": "cut off\n{"url": "https://example.org/no-text"}\n{"text": "  "}\n[1, 2]\n'


def web_config(folder: Path, web: Path, out: str) -> Path:
    (folder / "bad.jsonl").write_bytes(BAD_LINES)  # rejects of the read and normalize stages, compared too
    config = {
        "inputs": [
            {"path": str(folder / "bad.jsonl"), "name": "bad"},
            {"path": str(web / "*.json*"), "name": "web"},
            {"path": str(web / "*.warc.gz"), "name": "warc"},
            {"path": str(web / "*.wet.gz"), "name": "wet", "format": "wet"},
        ],
        "stages": [
            {"normalize": {}},
            {"tag": {"domain": {"rules": [{"domain": "wiki", "site": "wikipedia.org"}]}}},
        ],
        "output": out,
        "batch_docs": 8,
    }
    return write_config(folder, config, f"{out}.yaml")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, web: Path) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("local")
    manifest = run_pipeline(load_config(web_config(folder, web, "one")), "local", 1, progress=False)
    return folder / "one", manifest


def test_local_run_accounts_for_every_record(local_run: tuple[Path, dict]) -> None:
    out, manifest = local_run
    totals = manifest["totals"]
    assert totals["read"] == totals["kept"] + totals["rejected"] + totals["duplicates"]
    assert totals["read"] >= 150
    assert set(manifest["domains"]) == {"web", "wiki"}
    assert all(len(entry["sha256"]) == 64 and entry["size"] > 0 for entry in manifest["inputs"])
    assert [stage["stage"] for stage in manifest["stages"]] == ["read", "normalize", "tag"]
    assert manifest["config_hash"] and manifest["code_version"].startswith("0.")
    assert read_parts(out / "corpus").num_rows == totals["kept"]


def test_two_local_workers_give_identical_files(
    local_run: tuple[Path, dict], web: Path, tmp_path: Path
) -> None:
    out, _ = local_run
    run_pipeline(load_config(web_config(tmp_path, web, "two")), "local", 2, progress=False)
    ours = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    theirs = sorted(p.relative_to(tmp_path / "two").as_posix() for p in (tmp_path / "two").rglob("*.parquet"))
    assert ours == theirs
    for name in ours:
        assert (out / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_ray_executor_gives_the_same_rows(local_run: tuple[Path, dict], web: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    out, local_manifest = local_run
    ray_manifest = run_pipeline(load_config(web_config(tmp_path, web, "ray")), "ray", 2, progress=False)
    assert ray_manifest["totals"] == local_manifest["totals"]
    assert ray_manifest["executor"] == "ray"
    for folder in ("corpus", "rejects"):
        assert read_parts(tmp_path / "ray" / folder).equals(read_parts(out / folder)), folder
    assert read_parts(out / "rejects").num_rows == local_manifest["totals"]["rejected"] >= 4

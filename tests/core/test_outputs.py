"""Output layout: row-group limits, a lost part is redone on re-run, and unbalanced counts fail loudly."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from api.demo import build_package_shards
from curate.config import load_config
from curate.manifest import AccountingError, check_accounting
from curate.run import run_pipeline
from tests.core.helpers import read_parts, write_config


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shards")
    build_package_shards(folder)
    return folder


def config_for(folder: Path, shards: Path, **extra: object) -> Path:
    config = {
        "inputs": [{"path": str(shards / "*.jsonl.*"), "name": "pkg"}],
        "stages": [{"normalize": {}}, {"tag": {}}],
        "output": str(folder / "out"),
        **extra,
    }
    return write_config(folder, config)


def test_row_groups_respect_the_row_limit(tmp_path: Path, shards: Path) -> None:
    manifest = run_pipeline(
        load_config(config_for(tmp_path, shards, row_group_rows=40, batch_docs=25)), progress=False
    )
    parts = sorted((tmp_path / "out" / "corpus").rglob("*.parquet"))
    assert parts and sum(pq.ParquetFile(p).metadata.num_rows for p in parts) == manifest["totals"]["kept"]
    sizes = [
        pq.ParquetFile(p).metadata.row_group(i).num_rows
        for p in parts
        for i in range(pq.ParquetFile(p).metadata.num_row_groups)
    ]
    assert max(sizes) <= 40 and len(sizes) > len(parts)
    assert all(pq.ParquetFile(p).metadata.row_group(0).column(0).compression == "ZSTD" for p in parts)


def test_a_lost_part_is_redone_on_rerun(tmp_path: Path, shards: Path) -> None:
    config = load_config(config_for(tmp_path, shards))
    run_pipeline(config, progress=False)
    before = read_parts(tmp_path / "out" / "corpus")
    victim = sorted((tmp_path / "out" / "corpus").rglob("*.parquet"))[0]
    victim.unlink()
    run_pipeline(config, progress=False)
    assert victim.exists()
    assert read_parts(tmp_path / "out" / "corpus").equals(before)


def test_another_config_in_the_same_output_is_refused(tmp_path: Path, shards: Path) -> None:
    from curate.errors import ConfigError

    run_pipeline(load_config(config_for(tmp_path, shards)), progress=False)
    changed = load_config(config_for(tmp_path, shards, batch_docs=7))
    with pytest.raises(ConfigError, match="different config"):
        run_pipeline(changed, progress=False)


def test_unbalanced_counts_fail_loudly() -> None:
    totals = {"read": 10, "kept": 6, "rejected": 3, "duplicates": 0}
    with pytest.raises(AccountingError, match="read 10"):
        check_accounting(totals, 6, 3)
    with pytest.raises(AccountingError, match="files on disk"):
        check_accounting({**totals, "rejected": 4}, 5, 4)
    check_accounting({**totals, "rejected": 4}, 6, 4)

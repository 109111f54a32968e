"""Small helpers the core tests share: write a config, read a corpus back sorted by id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml


def write_config(folder: Path, config: dict[str, Any], name: str = "pipeline.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def read_parts(folder: Path) -> pa.Table:
    files = sorted(folder.rglob("*.parquet"))
    if not files:
        return pa.table({})
    return pa.concat_tables([pq.read_table(f) for f in files]).sort_by("id")


def rows_by_id(folder: Path) -> list[dict[str, Any]]:
    return read_parts(folder).to_pylist()

"""DuckDB connections for the mixers: quiet (no progress bar on the terminal or in captured output)."""

from __future__ import annotations

from typing import Any

import duckdb


def connect(**config: Any) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the given settings; DuckDB's own progress bar is off, we report progress."""
    con = duckdb.connect(config=config)
    con.execute("SET enable_progress_bar = false")
    return con

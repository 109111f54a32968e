"""The stage interface: small, Arrow in and Arrow out, knowing nothing about executors.

A stage is built from its validated params, `setup()` runs once per worker (load models there, never in
`__init__`, so a stage can be pickled to a Ray actor or a worker process cheaply), and `process()` maps a
pyarrow Table batch to a `StageResult`: the same rows with added columns, plus an optional drop reason
per row. The executor routes dropped rows to rejects/ with the reason and the stage name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict


class StageParams(BaseModel):
    """Base for every stage's params: unknown keys are errors, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Resources:
    """What one worker of this stage needs; the Ray executor turns it into actor options."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int = 512


@dataclass
class StageResult:
    """`table` keeps every input row in order; `drop_reason[i]` is null to keep row i, else a reason code."""

    table: pa.Table
    drop_reason: pa.Array | None = None
    stats: Counter = field(default_factory=Counter)


class Stage(ABC):
    name: ClassVar[str]
    Params: ClassVar[type[StageParams]] = StageParams
    resources: ClassVar[Resources] = Resources()

    def __init__(self, params: StageParams) -> None:
        self.params = params

    def output_fields(self) -> list[pa.Field]:
        """Columns this stage adds, so the executor knows the corpus schema before reading any data."""
        return []

    def setup(self) -> None:
        """Load models or build lookup tables; called once per worker before the first batch."""

    @abstractmethod
    def process(self, batch: pa.Table) -> StageResult: ...


def set_columns(table: pa.Table, columns: dict[str, pa.Array]) -> pa.Table:
    """Add or replace columns by name, so a stage can be re-run on its own output."""
    for name, values in columns.items():
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, values) if index >= 0 else table.append_column(name, values)
    return table

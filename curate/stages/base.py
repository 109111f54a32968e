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
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from curate.schema import DomainName


class StageParams(BaseModel):
    """Base for every stage's params: unknown keys are errors, so a typo never silently does nothing.

    `domains` scopes any stage to documents of those domains (as the input or an earlier `tag` set them):
    web heuristics must not judge code or books. Documents outside it pass the stage untouched, with its
    columns null and no drop."""

    model_config = ConfigDict(extra="forbid")

    domains: list[DomainName] | None = Field(
        default=None, min_length=1, description="run on documents of these domains only; others pass"
    )


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
    # reason code -> when it is given, listed by `curate stages NAME` (empty for a stage that never drops)
    drops: ClassVar[dict[str, str]] = {}

    @classmethod
    def drop_reasons(cls) -> dict[str, str]:
        """`drops`; a stage whose codes come from its configuration (rule families) computes them here."""
        return dict(cls.drops)

    def __init__(self, params: StageParams) -> None:
        self.params = params

    def output_fields(self) -> list[pa.Field]:
        """Columns this stage adds, so the executor knows the corpus schema before reading any data."""
        return []

    def setup(self) -> None:
        """Load models or build lookup tables; called once per worker before the first batch."""

    @abstractmethod
    def process(self, batch: pa.Table) -> StageResult: ...


def process_in_scope(stage: Stage, batch: pa.Table) -> StageResult:
    """`stage.process` on the rows its `domains` param selects; the other rows come back unchanged (the
    stage's new columns null, never dropped), in the batch's order."""
    domains = stage.params.domains
    if domains is None:
        return stage.process(batch)
    inside = pc.fill_null(pc.is_in(batch.column("domain"), pa.array(domains, pa.string())), False)
    count = pc.sum(inside).as_py() or 0
    if count == batch.num_rows:
        return stage.process(batch)
    if count == 0:
        return StageResult(with_null_columns(batch, stage.output_fields()))
    result = stage.process(batch.filter(inside))
    outside = with_null_columns(batch.filter(pc.invert(inside)), result.table.schema)
    merged = pa.concat_tables(
        [result.table, outside.select(result.table.schema.names)], promote_options="permissive"
    )
    positions = pa.chunked_array([pc.indices_nonzero(inside), pc.indices_nonzero(pc.invert(inside))])
    restore = pc.sort_indices(positions.combine_chunks())
    reasons = None
    if result.drop_reason is not None:
        padding = pa.nulls(batch.num_rows - count, pa.string())
        dropped = result.drop_reason
        if isinstance(dropped, pa.ChunkedArray):
            dropped = dropped.combine_chunks()
        reasons = pa.concat_arrays([dropped.cast(pa.string()), padding]).take(restore)
    return StageResult(merged.take(restore), reasons, result.stats)


def with_null_columns(table: pa.Table, fields: list[pa.Field] | pa.Schema) -> pa.Table:
    """The table with every field it lacks added as a null column of that field's type."""
    missing = {f.name: pa.nulls(table.num_rows, f.type) for f in fields if f.name not in table.schema.names}
    return set_columns(table, missing)


def set_columns(table: pa.Table, columns: dict[str, pa.Array]) -> pa.Table:
    """Add or replace columns by name, so a stage can be re-run on its own output."""
    for name, values in columns.items():
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, values) if index >= 0 else table.append_column(name, values)
    return table

"""A run's plan: every input shard with its stable key, and the output schemas, fixed before any work.

Executors only execute a plan; building it is where missing inputs and bad configs are caught.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa

from curate.config import PipelineConfig, expand_input, glob_root
from curate.dedup.paragraphs import COUNT_FIELDS
from curate.errors import ConfigError
from curate.readers.batches import ShardSource
from curate.readers.warc import DEFAULT_EXTRACTOR
from curate.schema import BASE_SCHEMA, with_reject_columns
from curate.stages.base import Stage
from curate.storage import Location, location, relative


@dataclass(frozen=True)
class ShardTask:
    key: str
    source: ShardSource
    size: int


@dataclass(frozen=True)
class RunPlan:
    config: PipelineConfig
    out: Location
    tasks: list[ShardTask]
    corpus_schema: pa.Schema
    reject_schema: pa.Schema

    @property
    def total_bytes(self) -> int:
        return sum(task.size for task in self.tasks)


def shard_key(source: str) -> str:
    return hashlib.blake2b(source.encode(), digest_size=8).hexdigest()


def build_plan(config: PipelineConfig, data_roots: Iterable[str | Location] = ()) -> RunPlan:
    """`data_roots` (the service's): every input is opened only if it resolves inside one of them."""
    assert config.output is not None, "resolve_paths sets the output"
    _check_unique_input_names(config)
    roots = tuple(str(root) for root in data_roots)
    tasks = []
    for index, spec in enumerate(config.inputs):
        root = glob_root(spec.path)
        name = spec.input_name(index)
        for path, fmt in expand_input(spec, index):
            source = f"{name}/{relative(path, root)}"
            extractor = spec.extractor or DEFAULT_EXTRACTOR
            shard = ShardSource(path, source, fmt, spec.fields, spec.domain, roots, extractor)
            tasks.append(ShardTask(key=shard_key(source), source=shard, size=path.stat().st_size))
    _check_unique_sources(tasks)
    corpus_schema = output_schema([spec.build() for spec in config.stages])
    if config.dedup is not None:
        corpus_schema = corpus_schema.append(pa.field("dup_cluster", pa.string()))
        if config.dedup.paragraphs.enabled:
            for field in COUNT_FIELDS:
                corpus_schema = corpus_schema.append(field)
    return RunPlan(config, location(config.output), tasks, corpus_schema, with_reject_columns(corpus_schema))


def output_schema(stages: list[Stage]) -> pa.Schema:
    """The base columns plus every column the stages declare, in stage order."""
    fields = list(BASE_SCHEMA)
    for stage in stages:
        for field in stage.output_fields():
            existing = [f for f in fields if f.name == field.name]
            if existing and not existing[0].type.equals(field.type):
                raise ConfigError(
                    f"stage {stage.name!r} declares column {field.name!r} as {field.type}, "
                    f"but it is already {existing[0].type}"
                )
            if not existing:
                # nullable whatever the stage says: rows rejected before this stage never get the column
                fields.append(field.with_nullable(True))
    return pa.schema(fields)


def _check_unique_input_names(config: PipelineConfig) -> None:
    names = [spec.input_name(i) for i, spec in enumerate(config.inputs)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(
            f"inputs: name(s) {', '.join(repeated)} used twice; give each input its own `name:`"
        )


def _check_unique_sources(tasks: list[ShardTask]) -> None:
    seen: dict[str, Location] = {}
    for task in tasks:
        if task.key in seen:
            raise ConfigError(
                f"inputs: {task.source.path} and {seen[task.key]} both read as {task.source.source!r}; "
                "give the inputs different `name:`s"
            )
        seen[task.key] = task.source.path

"""Process one shard end to end: read, run the stage chain, write parts, record completion.

This is the unit both executors schedule. It owns the per-shard accounting: every record read leaves as
a kept row or a reject row, and the completion record says how many of each and where they went.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.config import PipelineConfig
from curate.dedup.paragraphs import PARAGRAPH_DIR, unit_sketch, with_zero_counts
from curate.dedup.sketch import hasher_for, sketch_batch
from curate.plan import RunPlan, ShardTask
from curate.readers.batches import ReadBatch, read_batches
from curate.readers.records import ReadLimits, ReadTally
from curate.readers.unreadable import describe_unreadable, nothing_readable
from curate.schema import READ_STAGE
from curate.stages.base import Stage, process_in_scope
from curate.storage import Location, files_under, relative, write_atomic
from curate.writer import RowGroupLimits, ShardWriter

STATE_DIR = "_state/shards"


@dataclass
class StageCounts:
    docs_in: int = 0
    docs_out: int = 0
    dropped: Counter = field(default_factory=Counter)
    stats: Counter = field(default_factory=Counter)
    cpu_seconds: float = 0.0  # CPU time of this process in the stage (the read stage: reading and parsing)


@dataclass
class ShardReport:
    key: str
    source: str
    path: str
    size: int
    sha256: str
    read: int = 0
    kept: int = 0
    rejected: int = 0
    text_bytes: int = 0
    seconds: float = 0.0
    stages: dict[str, StageCounts] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    input: dict[str, Any] = field(default_factory=dict)  # what the reader saw: ReadTally.figures()
    refused: str = ""  # why the shard was not processed (a user error the driver reports); never on disk

    def to_json(self) -> str:
        data = {**vars(self), "stages": {name: _counts_dict(c) for name, c in self.stages.items()}}
        if not self.refused:
            del data["refused"]
        return json.dumps(data, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> ShardReport:
        data = json.loads(text)
        data["stages"] = {
            name: StageCounts(
                c["docs_in"],
                c["docs_out"],
                Counter(c["dropped"]),
                Counter(c["stats"]),
                c.get("cpu_seconds", 0.0),  # completion records written before it was measured lack it
            )
            for name, c in data["stages"].items()
        }
        return cls(**data)


def _counts_dict(counts: StageCounts) -> dict:
    """Plain dicts: dataclasses.asdict would rebuild a Counter from (key, value) pairs and count the pairs."""
    return {
        "docs_in": counts.docs_in,
        "docs_out": counts.docs_out,
        "dropped": dict(counts.dropped),
        "stats": dict(counts.stats),
        "cpu_seconds": round(counts.cpu_seconds, 4),
    }


def completion_path(out: Location, key: str) -> Location:
    return out / STATE_DIR / f"{key}.json"


class ShardProcessor:
    """Built once per worker (stages set up once), then fed shard after shard."""

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
        self.stages: list[Stage] = [spec.build() for spec in plan.config.stages]
        for stage in self.stages:
            stage.setup()
        dedup = plan.config.dedup
        self.hasher = hasher_for(dedup) if dedup is not None and (dedup.exact or dedup.near) else None
        self.paragraphs = dedup.paragraphs if dedup is not None and dedup.paragraphs.enabled else None

    def process(self, task: ShardTask) -> ShardReport:
        started = time.perf_counter()
        out = self.plan.out
        report = ShardReport(task.key, task.source.source, str(task.source.path), task.size, sha256="")
        report.stages = {name: StageCounts() for name in [READ_STAGE] + [s.name for s in self.stages]}
        config = self.plan.config
        writer = ShardWriter(
            out,
            task.key,
            self.plan.corpus_schema,
            self.plan.reject_schema,
            RowGroupLimits(config.row_group_rows, config.row_group_mb << 20),
        )
        ids = UniqueIds()
        tally = ReadTally()
        limits = ReadLimits(config.max_doc_chars)
        batches = read_batches(task.source, config.batch_docs, config.batch_mb << 20, tally, limits)
        try:
            for number, batch in enumerate(cpu_timed(batches, report.stages[READ_STAGE])):
                if number == 0 and self._refuse_unreadable(task, batch, tally, report):
                    writer.abort()
                    return report
                docs = ids.make_unique(batch.docs)
                self._count_read(report, docs, batch.rejects)
                writer.write_rejects(batch.rejects)
                kept = self._run_stages(docs, report, writer)
                if self.paragraphs is not None and kept.num_rows:
                    kept = with_zero_counts(kept)
                    writer.write_sketches(unit_sketch(kept, self.paragraphs), PARAGRAPH_DIR)
                writer.write_kept(kept)
                if self.hasher is not None and kept.num_rows:
                    writer.write_sketches(sketch_batch(kept, self.hasher))
                report.kept += kept.num_rows
            report.files = writer.commit()
        except BaseException:
            writer.abort()
            raise
        report.seconds = round(time.perf_counter() - started, 4)
        report.sha256, report.input = tally.sha256, tally.figures()
        check_shard_balance(report)
        check_file_accounted(report, tally)
        write_atomic(completion_path(out, task.key), report.to_json())
        return report

    def _refuse_unreadable(
        self, task: ShardTask, first: ReadBatch, tally: ReadTally, report: ShardReport
    ) -> bool:
        """An input whose first batch reads as nothing is refused (the driver fails the run with the
        reason), unless its config says `allow_unreadable: true`."""
        index = input_index(self.plan.config, task.source.source)
        if self.plan.config.inputs[index].allow_unreadable:
            return False
        if not nothing_readable(first.docs, first.rejects, tally):
            return False
        report.refused = describe_unreadable(task.source, f"inputs[{index}]", first.rejects)
        return True

    def _count_read(self, report: ShardReport, docs: pa.Table, rejects: pa.Table) -> None:
        counts = report.stages[READ_STAGE]
        counts.docs_in += docs.num_rows + rejects.num_rows
        counts.docs_out += docs.num_rows
        counts.dropped.update(rejects.column("reject_reason").to_pylist())
        report.read += docs.num_rows + rejects.num_rows
        report.rejected += rejects.num_rows
        report.text_bytes += pc.sum(pc.binary_length(docs.column("text"))).as_py() or 0

    def _run_stages(self, table: pa.Table, report: ShardReport, writer: ShardWriter) -> pa.Table:
        for stage in self.stages:
            if table.num_rows == 0:
                break
            counts = report.stages[stage.name]
            counts.docs_in += table.num_rows
            started = time.process_time()
            result = process_in_scope(stage, table)
            counts.cpu_seconds += time.process_time() - started
            if result.table.num_rows != table.num_rows:
                raise RuntimeError(
                    f"stage {stage.name!r} returned {result.table.num_rows} rows for "
                    f"{table.num_rows}; a stage must drop rows via drop_reason, not remove them"
                )
            counts.stats.update(result.stats)
            table = result.table
            if result.drop_reason is not None:
                table = self._split_rejects(stage.name, table, result.drop_reason, counts, report, writer)
            counts.docs_out += table.num_rows
        return table

    def _split_rejects(
        self,
        stage: str,
        table: pa.Table,
        reasons: pa.Array,
        counts: StageCounts,
        report: ShardReport,
        writer: ShardWriter,
    ) -> pa.Table:
        dropped = pc.is_valid(reasons)
        if not pc.any(dropped).as_py():
            return table
        rejects = table.filter(dropped)
        reject_reasons = reasons.filter(dropped)
        counts.dropped.update(reject_reasons.to_pylist())
        rejects = rejects.append_column("reject_reason", reject_reasons)
        rejects = rejects.append_column("reject_stage", pa.array([stage] * rejects.num_rows, pa.string()))
        writer.write_rejects(rejects)
        report.rejected += rejects.num_rows
        return table.filter(pc.invert(dropped))


def cpu_timed(batches: Iterable[ReadBatch], counts: StageCounts) -> Iterator[ReadBatch]:
    """The batches, adding the CPU time spent producing each (reading, decoding, parsing) to `counts`."""
    iterator = iter(batches)
    while True:
        started = time.process_time()
        batch = next(iterator, None)
        counts.cpu_seconds += time.process_time() - started
        if batch is None:
            return
        yield batch


def input_index(config: PipelineConfig, source: str) -> int:
    """The input a shard came from: its `source` is the input's name, a slash, then the file's path below
    the glob's root (names are unique, so the longest name that prefixes it is the one)."""
    names = [spec.input_name(i) for i, spec in enumerate(config.inputs)]
    matching = [i for i, name in enumerate(names) if source.startswith(name + "/")]
    return max(matching, key=lambda i: len(names[i]))


class UniqueIds:
    """Inputs repeat ids (Dolma uses the URL as id); within a shard a repeat gets `~2`, `~3`, ... so
    every document of a source can be addressed by (id, source). Memory: 8 bytes per document."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def make_unique(self, docs: pa.Table) -> pa.Table:
        ids = docs.column("id").to_pylist()
        changed = False
        for i, doc_id in enumerate(ids):
            key, candidate, n = xxhash.xxh3_64_intdigest(doc_id.encode()), doc_id, 1
            while key in self.seen:
                n += 1
                candidate = f"{doc_id}~{n}"
                key = xxhash.xxh3_64_intdigest(candidate.encode())
            self.seen.add(key)
            if n > 1:
                ids[i], changed = candidate, True
        if not changed:
            return docs
        return docs.set_column(docs.schema.get_field_index("id"), "id", pa.array(ids, pa.string()))


def check_shard_balance(report: ShardReport) -> None:
    if report.read != report.kept + report.rejected:
        raise RuntimeError(
            f"accounting error in {report.source}: read {report.read} != kept {report.kept} + "
            f"rejected {report.rejected}"
        )


def check_file_accounted(report: ShardReport, tally: ReadTally) -> None:
    """Balance is not enough: a reader that stops early balances what it read. Every byte of the file
    (or every row its footer declares) must be read or covered by a `truncated`/`unreadable` reject."""
    problem = tally.problem()
    if problem is not None:
        raise RuntimeError(f"input {report.path} ({report.source}) is not fully accounted for: {problem}")


def load_completion(out: Location, key: str) -> ShardReport | None:
    path = completion_path(out, key)
    try:
        return ShardReport.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def pending_tasks(plan: RunPlan) -> list[ShardTask]:
    """Shards with no completion record, a changed input size, or a recorded output file gone missing.

    The output is listed once (not probed file by file), which on an object store is one listing
    instead of a request per part."""
    existing = {relative(path, plan.out) for path in files_under(plan.out)}
    return [task for task in plan.tasks if not _is_done(plan.out, task, existing)]


def _is_done(out: Location, task: ShardTask, existing: set[str]) -> bool:
    done = load_completion(out, task.key)
    return done is not None and done.size == task.size and all(f in existing for f in done.files)

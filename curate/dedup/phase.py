"""The global dedup phase of a run: after every shard is done, before the manifest is written.

It is resumable like the shard phase: clusters are a pure function of the sketches (and the index as it
was before this run), each part is applied idempotently, and `result.json` marks the phase done. The
run's kept documents join the persistent index only after the manifest is written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.dedup.apply import Stripping, affected_keys, apply_to_part, members_of, parts_of
from curate.dedup.boilerplate import DECISIONS, RUN_COUNTS, Decisions, find_boilerplate, index_folder
from curate.dedup.cluster import (
    Clusters,
    TextLookup,
    candidate_pairs,
    choose_keepers,
    load_docs,
    open_work_db,
    sql_list,
    verified_pairs,
)
from curate.dedup.index import DedupIndex, sketch_parameters
from curate.dedup.paragraphs import PARAGRAPH_DIR
from curate.dedup.ray_global import choose_global_path, member_files, run_ray_global
from curate.dedup.settings import DedupConfig
from curate.plan import RunPlan
from curate.storage import (
    Location,
    commit,
    discard,
    files_under,
    is_remote,
    location,
    parquet_writer,
    register_filesystems,
    scratch_dir,
    write_atomic,
    write_parquet,
)
from curate.writer import SKETCH_DIR

STATE = "_state/dedup"
PINNED_INDEX = "index_pin.json"  # the persistent index as this run's dedup phase first saw it
MEMBERS = "members.parquet"


@dataclass
class DedupResult:
    run: str
    documents: int = 0
    candidate_pairs: int = 0
    verified_pairs: int = 0
    clusters: int = 0
    exact_duplicate: int = 0
    near_duplicate: int = 0
    index_version_before: int | None = None
    boilerplate_paragraphs: int = 0  # distinct units held by >= min_docs documents (paragraph dedup)
    paragraph_docs: int = 0  # kept documents that lost at least one unit
    paragraphs_removed: int = 0  # units removed from those documents
    paragraph_chars_removed: int = 0
    boilerplate_only: int = 0  # documents rejected: too little text left once stripped
    global_path: str = "duckdb"  # where clusters were found and applied: "duckdb" (one process) or "ray"
    global_path_reason: str = ""
    files: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return self.exact_duplicate + self.near_duplicate


def run_id(plan: RunPlan, input_checksums: list[str]) -> str:
    """The same config over the same input bytes is the same run, wherever its output lives."""
    digest = hashlib.sha256(plan.config.config_hash().encode())
    for checksum in sorted(input_checksums):
        digest.update(checksum.encode())
    return digest.hexdigest()[:24]


def run_dedup(plan: RunPlan, run: str, executor: str = "local") -> DedupResult:
    config = plan.config.dedup
    assert config is not None
    state = plan.out / STATE
    work = scratch_dir(plan.out, STATE)  # DuckDB's database and spill need a local disk
    done = state / "result.json"
    if done.is_file():
        return DedupResult(**json.loads(done.read_text(encoding="utf-8")))
    index = DedupIndex(location(config.index)) if config.index else None
    runs: list[str] = []
    result = DedupResult(run=run)
    if index is not None:
        index.check_sketch(sketch_parameters(config))
        result.index_version_before, runs = _pinned_index(index, state, run)
    segments = _existing([index.path / "segments" / f"{name}.parquet" for name in runs]) if index else []
    result.global_path, result.global_path_reason = choose_global_path(plan, executor, segments)
    if result.global_path == "ray":
        counts, result.files = run_ray_global(plan, segments, state)
        for key, value in counts.items():
            setattr(result, key, value)
        return _finish(state, work, result)
    con = open_work_db(work / "work.duckdb", config)
    try:
        clusters = _find_clusters(con, plan, config, segments, result)
        if config.paragraphs.enabled:
            members = clusters.members
            unit_files = files_under(plan.out / PARAGRAPH_DIR, "*.parquet")
            earlier = (
                _existing([index_folder(index.path, config.paragraphs) / f"{name}.parquet" for name in runs])
                if index
                else []
            )
            register_filesystems(con, [*unit_files, *earlier])
            stats = find_boilerplate(
                con,
                unit_files,
                members.filter(pc.is_valid(members.column("reason"))),
                earlier,
                config.paragraphs,
                work,
                keep_run_counts=index is not None,
            )
            for key, value in stats.items():
                setattr(result, key, value)
    finally:
        con.close()
    write_parquet(state / MEMBERS, clusters.members)
    _publish(work, state, [DECISIONS, RUN_COUNTS])
    decisions = Decisions(work) if config.paragraphs.enabled else None
    try:
        stripped = set(decisions.parts()) if decisions is not None else set()
        for source, domain in affected_keys(clusters.members, stripped):
            members = members_of(clusters.members, source, domain)
            stripping = (
                Stripping(decisions.of(source, domain), config.paragraphs)
                if decisions is not None and (source, domain) in stripped
                else None
            )
            for part in parts_of(plan.out, source, domain):
                result.files += apply_to_part(
                    plan.out, part, members, plan.corpus_schema, plan.reject_schema, stripping
                )
    finally:
        if decisions is not None:
            decisions.close()
    result.files = sorted(set(result.files))
    reasons = clusters.members.column("reason").to_pylist()
    result.exact_duplicate = reasons.count("exact_duplicate")
    result.near_duplicate = reasons.count("near_duplicate")
    return _finish(state, work, result)


def _finish(state: Location, work: Path, result: DedupResult) -> DedupResult:
    """Mark the phase done (`result.json`) and drop DuckDB's work files."""
    write_atomic(state / "result.json", json.dumps(asdict(result), indent=1))
    shutil.rmtree(work / "spill", ignore_errors=True)
    (work / "work.duckdb").unlink(missing_ok=True)
    return result


def _publish(work: Path, state: Location, names: list[str]) -> None:
    """On an object store, the phase's DuckDB outputs (computed on local disk) go beside its other state,
    so the index can be extended later from another machine; on disk they are already there."""
    if not is_remote(state):
        return
    for name in names:
        if (work / name).exists():
            state.fs.put_file(str(work / name), (state / name).path)


def _local_state(plan: RunPlan) -> Path:
    """The phase's state files on local disk (fetched from the object store if this machine lacks them)."""
    state, work = plan.out / STATE, scratch_dir(plan.out, STATE)
    if is_remote(state):
        work.mkdir(parents=True, exist_ok=True)
        for name in (DECISIONS, RUN_COUNTS):
            if (state / name).is_file():
                state.fs.get_file((state / name).path, str(work / name))
    return work


def _existing(paths: list[Location]) -> list[Location]:
    return [p for p in paths if p.exists()]


def _pinned_index(index: DedupIndex, state: Location, run: str) -> tuple[int, list[str]]:
    """The index version and runs this phase clusters against, fixed by its first attempt: a phase
    resumed after a crash must not see segments another run added meanwhile, or the parts it applies
    now would follow other clusters than the parts applied before the crash."""
    pin = state / PINNED_INDEX
    if pin.is_file():
        pinned = json.loads(pin.read_text(encoding="utf-8"))
    else:
        current = index.read()
        runs = [entry["run"] for entry in current["segments"] if entry["run"] != run]
        pinned = {"version": current["version"], "runs": runs}
        write_atomic(pin, json.dumps(pinned))
    return pinned["version"], list(pinned["runs"])


def _find_clusters(
    con: duckdb.DuckDBPyConnection,
    plan: RunPlan,
    config: DedupConfig,
    segments: list[Location],
    result: DedupResult,
) -> Clusters:
    sketches = files_under(plan.out / SKETCH_DIR, "*.parquet")
    register_filesystems(con, [*sketches, *segments])
    result.documents = load_docs(con, sketches, segments)
    if result.documents == 0:
        return Clusters(_empty_members())
    candidate_pairs(con, config)
    result.candidate_pairs = con.execute("SELECT count(*) FROM pairs").fetchall()[0][0]
    texts = TextLookup(plan.out / "corpus", config) if config.verify == "exact" else None
    a, b, _ = verified_pairs(con, config, texts)
    result.verified_pairs = len(a)
    clusters = choose_keepers(con, a, b, config, texts)
    result.clusters = len(set(clusters.members.column("cluster").to_pylist()))
    return clusters


def _empty_members() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([], pa.string()),
            "source": pa.array([], pa.string()),
            "domain": pa.array([], pa.string()),
            "cluster": pa.array([], pa.string()),
            "keeper": pa.array([], pa.bool_()),
            "reason": pa.array([], pa.string()),
            "similarity": pa.array([], pa.float64()),
        }
    )


def extend_index(plan: RunPlan, run: str) -> int | None:
    """Add this run's kept documents to the persistent index (once per run); returns the new version.

    With paragraph dedup, the run's unit counts (hash -> documents) go in beside the sketches, so later
    runs count the documents of this one. Both files are in place before index.json names the run."""
    config = plan.config.dedup
    if config is None or config.index is None:
        return None
    index = DedupIndex(location(config.index))
    if index.contains(run):
        return index.read()["version"]
    state = _local_state(plan)
    counts = state / RUN_COUNTS
    has_counts = config.paragraphs.enabled and counts.exists() and pq.read_metadata(counts).num_rows > 0
    segment = index.segment_path(run)
    kept = _write_kept_sketches(plan, state, segment)
    if kept == 0 and not has_counts:
        return index.read()["version"]
    if has_counts:
        write_parquet(index_folder(index.path, config.paragraphs) / f"{run}.parquet", pq.read_table(counts))
    return index.add_segment(run, kept, sketch_parameters(config))


SEGMENT_BATCH_ROWS = 50_000


def _write_kept_sketches(plan: RunPlan, local_state: Path, segment: Location) -> int:
    """Stream the sketches of the documents this run emitted (not duplicates, not rejected as boilerplate
    only), sorted by id, into the index segment; returns how many. DuckDB sorts within the dedup memory
    cap and spills to the scratch disk, and batches pass through, so memory does not grow with the run."""
    assert plan.config.dedup is not None
    sketches = files_under(plan.out / SKETCH_DIR, "*.parquet")
    if not sketches:
        return 0
    con = open_work_db(scratch_dir(plan.out, STATE) / "index.duckdb", plan.config.dedup)
    removed = ["SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS source WHERE false"]
    members = member_files(plan.out / STATE)  # read by DuckDB, never loaded whole (the Ray path's are big)
    register_filesystems(con, [*sketches, *members])
    if members:
        removed.append(f"SELECT id, source FROM read_parquet({sql_list(members)}) WHERE reason IS NOT NULL")
    if plan.config.dedup.paragraphs.enabled:
        decisions = Decisions(local_state)
        con.register("rejected", decisions.rejected())
        decisions.close()
        removed.append("SELECT id, source FROM rejected")
    columns = "s.id, s.n_chars, s.crawl_date, s.quality, s.exact_hash, s.bands, s.signature"
    reader = con.sql(
        f"SELECT {columns} FROM read_parquet({sql_list(sketches)}) s "
        f"ANTI JOIN ({' UNION ALL '.join(removed)}) r ON s.id = r.id AND s.source = r.source ORDER BY s.id"
    ).to_arrow_reader(SEGMENT_BATCH_ROWS)
    written, writer = 0, None
    try:
        for batch in reader:
            if batch.num_rows:
                writer = writer or parquet_writer(segment, batch.schema, compression="zstd")
                writer.write_batch(batch)
                written += batch.num_rows
        if writer is not None:
            writer.close()
            commit(segment)
    except BaseException:
        if writer is not None:
            writer.close()
            discard(segment)
        raise
    finally:
        con.close()
    return written

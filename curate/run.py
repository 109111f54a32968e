"""`curate run`: plan, execute the pending shards on an executor, then write and check the manifest.

Re-running the same command after a crash redoes only shards without a completion record, so the output
equals one uninterrupted run. A different config in the same output directory is refused, because mixing
two configs' shards would make a corpus no single config describes.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from curate.config import PipelineConfig
from curate.dedup.index import DedupIndex, sketch_parameters
from curate.dedup.phase import extend_index, run_dedup, run_id
from curate.errors import ConfigError
from curate.executors import Executor
from curate.executors.local import run_local
from curate.locks import LockBusy, exclusive
from curate.manifest import build_manifest, write_manifest
from curate.plan import RunPlan, build_plan
from curate.progress import RunProgress
from curate.shard_runner import STATE_DIR, ShardReport, load_completion, pending_tasks
from curate.storage import Location, files_under, is_remote, location, write_atomic
from curate.writer import stale_outputs

RUN_RECORD = "_state/run.json"
LOCK_FILE = "_state/run.lock"  # beside the run record; taken before the output is claimed


def run_pipeline(
    config: PipelineConfig,
    executor: Executor = "local",
    workers: int = 1,
    ray_address: str | None = None,
    progress: bool = True,
    data_roots: tuple[str | Path, ...] = (),
) -> dict[str, Any]:
    started = time.perf_counter()
    plan = build_plan(config, data_roots)
    check_dedup_index(plan)
    prepare_folder(plan.out, "output folder", "--out DIR")
    with output_lock(plan.out):
        claim_output(plan)
        warnings = config_warnings(config)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr, flush=True)
        with executor_session(executor, workers, ray_address):
            run_shards(plan, executor, workers, progress)
            reports = collect_reports(plan)
            dedup = None
            if plan.config.dedup is not None:
                dedup = run_dedup(plan, run_id(plan, [report.sha256 for report in reports]), executor)
        manifest = build_manifest(plan, reports, time.perf_counter() - started, executor, dedup, warnings)
        write_manifest(plan.out, manifest)
        if dedup is not None:
            manifest["dedup"]["index_version_after"] = extend_index(plan, dedup.run)
            write_manifest(plan.out, manifest)
    return manifest


def executor_session(executor: Executor, workers: int, ray_address: str | None) -> AbstractContextManager:
    if executor != "ray":
        return nullcontext()
    from curate.executors.ray_executor import ray_session

    return ray_session(workers, ray_address)


@runtime_checkable
class WarnsAtStart(Protocol):
    """Stage params that can tell, on the driver, that the run will fall back to something weaker."""

    def run_warnings(self) -> list[str]: ...


def config_warnings(config: PipelineConfig) -> list[str]:
    """Every fallback the run will take, said on stderr when it starts and kept in the manifest."""
    return [
        warning
        for spec in config.stages
        if isinstance(spec.params, WarnsAtStart)
        for warning in spec.params.run_warnings()
    ]


def prepare_folder(folder: Location, what: str, key: str) -> None:
    """Create a folder the run writes and prove it takes files, before any work: a path under a regular
    file, a read-only folder or a bucket without access is one line naming it and the setting (`key`),
    not a traceback later."""
    try:
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{what} {folder} is a file; choose a new or empty folder ({key})")
        _probe_write(folder)
    except (OSError, PermissionError) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise ConfigError(
            f"{what} {folder} cannot be created or written ({reason}); choose one you can write to ({key})"
        ) from None


def _probe_write(folder: Location) -> None:
    if not is_remote(folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return
    probe = folder / f"_state/probe-{uuid.uuid4().hex}"
    probe.write_text("", encoding="utf-8")
    probe.unlink()


def run_shards(plan: RunPlan, executor: Executor, workers: int, progress: bool) -> None:
    todo = pending_tasks(plan)
    clear_unfinished(plan.out, [task.key for task in todo])
    with RunProgress(len(todo), enabled=progress) as bar:

        def on_done(report: ShardReport) -> None:
            if report.refused:
                raise ConfigError(report.refused)
            bar.advance(report.read)

        if executor == "ray":
            from curate.executors.ray_executor import run_ray

            run_ray(plan, todo, workers, on_done)
        else:
            run_local(plan, todo, workers, on_done)


def check_dedup_index(plan: RunPlan) -> None:
    """An index built with other sketch settings cannot be matched against, and one that cannot be
    written fails only after the whole run: refuse both before any work."""
    dedup = plan.config.dedup
    if dedup is not None and dedup.index is not None:
        prepare_folder(location(dedup.index), "dedup index", "dedup.index: DIR")
        DedupIndex(location(dedup.index)).check_sketch(sketch_parameters(dedup))


def claim_output(plan: RunPlan) -> None:
    """Called under the output lock, so two runs never claim one folder at once.

    A folder whose earlier run finished no shard (it was refused, or killed early) holds nothing of that
    config, so a corrected config may take it over: fixing `fields:` and re-running needs no new --out."""
    record = plan.out / RUN_RECORD
    config_hash = plan.config.config_hash()
    if record.is_file():
        previous = json.loads(record.read_text(encoding="utf-8")).get("config_hash")
        if previous == config_hash:
            return
        if _finished_anything(plan.out):
            raise ConfigError(
                f"{plan.out} holds a run of a different config ({previous[:12]}); "
                "use another --out, or delete that directory to start over"
            )
    elif _holds_more_than_the_lock(plan.out):
        raise ConfigError(f"{plan.out} exists and is not a curate output; choose an empty or new --out")
    write_atomic(record, json.dumps({"config_hash": config_hash}))


def _finished_anything(out: Location) -> bool:
    return (out / "manifest.json").is_file() or bool(files_under(out / STATE_DIR))


def _holds_more_than_the_lock(out: Location) -> bool:
    """Any file in the folder besides the lock this run has just taken."""
    lock = str(out / LOCK_FILE)
    return any(str(path) != lock for path in files_under(out))


@contextmanager
def output_lock(out: Location) -> Iterator[None]:
    """Held for the whole run, so a second run into the same output refuses instead of writing beside
    the first (and deleting its unfinished parts). A crashed run never leaves a stale lock (see locks)."""
    try:
        with exclusive(out / LOCK_FILE, wait=False):
            yield
    except LockBusy as busy:
        message = (
            f"{out} is being written by another curate run ({busy}); wait for it to end or use another --out"
        )
        raise ConfigError(message) from None


def clear_unfinished(out: Location, keys: list[str]) -> None:
    """Parts of shards without a completion record, and temporaries of a killed attempt, are garbage."""
    for path in stale_outputs(out, keys):
        path.unlink()


def collect_reports(plan: RunPlan) -> list[ShardReport]:
    reports = []
    for task in plan.tasks:
        report = load_completion(plan.out, task.key)
        if report is None:
            raise RuntimeError(f"shard {task.source.source} finished without a completion record")
        reports.append(report)
    return reports

"""The Ray executor: the same ShardProcessor, in a pool of Ray Data actors, one shard per call.

Each actor sets its stages up once (models load once per actor, as in NeMo Curator's actor stages) and
then processes whole shards with `map_batches`, so outputs, completion records and resume behave exactly
as on the local executor. With an address it joins that cluster; without one it starts a local Ray
and stops it afterwards.

Models travel with the run: a node of a cluster need not have the driver's models folder. The driver packs
every model folder the stages read (`curate.stages.model_folders`) once, as a tar keyed by its sha256, and
puts it in Ray's object store; each actor rebuilds the folders it needs in a node-local cache
(`$CURATE_MODEL_CACHE`, else `<tmp>/curate-models`), once per node and checksum, and its stages load from
there. Fault tolerance: a shard whose actor or node dies is redone from scratch on a restarted actor
(a shard clears its own outputs before it starts and they are keyed by the shard, so a retry is exact).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from curate.config import StageSpec
from curate.errors import ConfigError
from curate.plan import RunPlan, ShardTask
from curate.shard_runner import ShardProcessor, ShardReport
from curate.stages.model_folders import UsesModelFolders, model_folders

MODEL_CACHE_ENV = "CURATE_MODEL_CACHE"


def actor_retries() -> dict[str, int]:
    """A dead actor (its node lost) is restarted elsewhere and its shard resubmitted, as often as it takes.

    Ray Data's default for actor pools today, stated here so a change of default cannot drop it; passed as
    `ray_remote_args_fn` because Ray deprecates extra keyword arguments to `map_batches`."""
    return {"max_restarts": -1, "max_task_retries": -1}


@dataclass(frozen=True)
class ModelShipment:
    """The model folders a plan's stages read, packed on the driver: `archives` maps a folder's checksum
    to the object-store ref of its tar; `stage_homes[i]` maps each name stage i looks up to a checksum."""

    archives: dict[str, Any]
    stage_homes: list[dict[str, str]]


class _ShardActor:
    def __init__(self, plan: RunPlan, shipment: ModelShipment) -> None:
        self.processor = ShardProcessor(localized_plan(plan, shipment, node_model_cache()))
        self.tasks = {task.key: task for task in plan.tasks}

    def __call__(self, batch: dict) -> dict:
        reports = [self.processor.process(self.tasks[key]).to_json() for key in batch["key"]]
        return {"report": reports}


@contextmanager
def ray_session(workers: int, address: str | None) -> Iterator[None]:
    """Ray for the whole run (shards, then the dedup shuffle); stopped at the end only if started here."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        _init_ray(ray, workers, address)
    try:
        yield
    finally:
        if started_here:
            ray.shutdown()


def run_ray(
    plan: RunPlan, tasks: list[ShardTask], workers: int, on_done: Callable[[ShardReport], None]
) -> None:
    if tasks:
        run_shipped(plan, tasks, workers, on_done, ship_models(plan))


def ship_models(plan: RunPlan) -> ModelShipment:
    """Pack each model folder the stages read once (two stages may share one) and `ray.put` it."""
    import ray

    archives: dict[str, Any] = {}
    checksums: dict[Path, str] = {}
    stage_homes = []
    for spec in plan.config.stages:
        home = {}
        for name, folder in model_folders(spec.params).items():
            if folder not in checksums:
                if not folder.is_dir():
                    raise ConfigError(
                        f"stage {spec.name!r} reads model folder {folder}, which is gone from the driver; "
                        "restore or re-train the model there (the run ships it to the workers)"
                    )
                data = pack_folder(folder)
                checksums[folder] = hashlib.sha256(data).hexdigest()
                if checksums[folder] not in archives:  # two folders with the same files travel once
                    archives[checksums[folder]] = ray.put(data)
            home[name] = checksums[folder]
        stage_homes.append(home)
    return ModelShipment(archives, stage_homes)


def pack_folder(folder: Path) -> bytes:
    """A tar of the folder's files that depends on their names and bytes only (sorted, no times or owners),
    so its sha256 names the content and an unchanged model is never shipped or unpacked twice on a node."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = tarfile.TarInfo(path.relative_to(folder).as_posix())
            info.size = path.stat().st_size
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    return buffer.getvalue()


def node_model_cache() -> Path:
    """Where an actor rebuilds shipped models: read on the actor's node, so each node may set its own."""
    return Path(os.environ.get(MODEL_CACHE_ENV) or Path(tempfile.gettempdir()) / "curate-models")


def localized_plan(plan: RunPlan, shipment: ModelShipment, cache: Path) -> RunPlan:
    """The plan with every model-reading stage's params pointed at a home in this node's cache."""
    stages = [
        _localized_stage(spec, names, shipment, cache)
        for spec, names in zip(plan.config.stages, shipment.stage_homes, strict=True)
    ]
    return replace(plan, config=plan.config.model_copy(update={"stages": stages}))


def _localized_stage(
    spec: StageSpec, names: dict[str, str], shipment: ModelShipment, cache: Path
) -> StageSpec:
    if not names or not isinstance(spec.params, UsesModelFolders):
        return spec
    home = materialized_home(names, shipment, cache)
    return spec.model_copy(update={"params": spec.params.with_models_home(home)})


def materialized_home(names: dict[str, str], shipment: ModelShipment, cache: Path) -> Path:
    """A models home holding `name -> folder` links to the unpacked folders, one per set of models."""
    for checksum in names.values():
        unpacked_folder(checksum, shipment.archives[checksum], cache)
    digest = hashlib.sha256(json.dumps(sorted(names.items())).encode()).hexdigest()[:16]
    home = cache / f"home-{digest}"
    if not home.is_dir():
        staging = _staging_dir(home)
        for name, checksum in names.items():
            (staging / name).symlink_to(Path("..") / checksum, target_is_directory=True)
        _publish(staging, home)
    return home


def unpacked_folder(checksum: str, archive: Any, cache: Path) -> Path:
    """`<cache>/<checksum>/`, fetched from the object store and unpacked only if this node lacks it."""
    import ray

    folder = cache / checksum
    if not folder.is_dir():
        staging = _staging_dir(folder)
        with tarfile.open(fileobj=io.BytesIO(ray.get(archive))) as tar:
            tar.extractall(staging, filter="data")
        _publish(staging, folder)
    return folder


def _staging_dir(final: Path) -> Path:
    staging = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _publish(staging: Path, final: Path) -> None:
    """Rename into place in one step; if another actor on this node got there first, keep its copy."""
    try:
        staging.rename(final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)


def _init_ray(ray, workers: int, address: str | None) -> None:  # noqa: ANN001 - the ray module
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    kwargs = {"log_to_driver": False, "logging_level": logging.WARNING, "include_dashboard": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=max(workers, 1), **kwargs)


def run_shipped(
    plan: RunPlan,
    tasks: list[ShardTask],
    workers: int,
    on_done: Callable[[ShardReport], None],
    shipment: ModelShipment,
) -> None:
    """The shards in a pool of actors whose stages read the shipped models, never the driver's paths."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    items = [{"key": task.key} for task in tasks]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    reports = dataset.map_batches(
        _ShardActor,
        fn_constructor_kwargs={"plan": plan, "shipment": shipment},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=max(1, min(workers, len(tasks)))),
        num_cpus=_stage_cpus(plan),
        ray_remote_args_fn=actor_retries,
    )
    for row in reports.iter_rows():
        on_done(ShardReport.from_json(row["report"]))


def _stage_cpus(plan: RunPlan) -> float:
    """An actor runs the whole chain, so it asks for what the hungriest stage declares."""
    from curate.stages.registry import get_stage

    return max([1.0] + [get_stage(spec.name).resources.cpus for spec in plan.config.stages])

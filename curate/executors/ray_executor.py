"""The Ray executor: the same ShardProcessor, in a pool of Ray Data actors, one shard per call.

Each actor sets its stages up once (models load once per actor, as in NeMo Curator's actor stages) and
then processes whole shards with `map_batches`, so outputs, completion records and resume behave exactly
as on the local executor. With an address it joins that cluster; without one it starts a local Ray
and stops it afterwards.

Models and every file a stage's params name travel with the run (`curate.executors.shipping`): a node
of a cluster need not have the driver's models folder, blocklists or evaluation sets. Fault tolerance: a
shard whose actor or node dies is redone from scratch on a restarted actor
(a shard clears its own outputs before it starts and they are keyed by the shard, so a retry is exact).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from curate.errors import ConfigError
from curate.executors.shipping import StageShipment, localized_plan, node_model_cache, ship_stage_files
from curate.plan import RunPlan, ShardTask
from curate.shard_runner import ShardProcessor, ShardReport

USER_ERROR = "user_error"


def actor_options() -> dict[str, Any]:
    """A dead actor (its node lost) is restarted elsewhere and its shard resubmitted, as often as it takes
    (Ray Data's default for actor pools today, stated so a change of default cannot drop it); actors are
    spread over the nodes, so shards share the nodes' disks and memory rather than pile onto one. Passed
    as `ray_remote_args_fn` because Ray deprecates extra keyword arguments to `map_batches`."""
    return {"max_restarts": -1, "max_task_retries": -1, "scheduling_strategy": "SPREAD"}


class _ShardActor:
    """A user error (ConfigError) comes back as a row (`user_error`), so the driver raises it as its
    one line: raised here, it would reach the driver as Ray's traceback, its class and line lost. A
    stage that fails to set up fails the actor's first shard for the same reason, not its constructor
    (whose failure Ray retries, then reports in its own words)."""

    def __init__(self, plan: RunPlan, shipment: StageShipment) -> None:
        self.tasks = {task.key: task for task in plan.tasks}
        self.setup_error: Exception | None = None
        try:
            self.processor = ShardProcessor(localized_plan(plan, shipment, node_model_cache()))
        except Exception as error:
            self.setup_error = error

    def __call__(self, batch: dict) -> dict:
        try:
            if self.setup_error is not None:
                raise self.setup_error
            reports = [self.processor.process(self.tasks[key]).to_json() for key in batch["key"]]
        except ConfigError as error:
            return {"report": [{USER_ERROR: str(error)}]}
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
        run_shipped(plan, tasks, workers, on_done, ship_stage_files(plan))


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
    shipment: StageShipment,
) -> None:
    """The shards in a pool of actors whose stages read the shipped files, never the driver's paths."""
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
        ray_remote_args_fn=actor_options,
    )
    for row in reports.iter_rows():
        if USER_ERROR in row["report"]:
            raise ConfigError(row["report"][USER_ERROR])
        on_done(ShardReport.from_json(row["report"]))


def _stage_cpus(plan: RunPlan) -> float:
    """An actor runs the whole chain, so it asks for what the hungriest stage declares."""
    from curate.stages.registry import get_stage

    return max([1.0] + [get_stage(spec.name).resources.cpus for spec in plan.config.stages])

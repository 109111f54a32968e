"""The embedded default: shards through a process pool, one set-up ShardProcessor per worker process.

Memory stays bounded because each worker streams its shard in batches; the pool never holds a shard.
With one worker the shards run in this process, which keeps tracebacks and profiles simple.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from curate.plan import RunPlan, ShardTask
from curate.process import die_with_parent
from curate.shard_runner import ShardProcessor, ShardReport

_worker: ShardProcessor | None = None
_setup_error: Exception | None = None


def _init_worker(plan: RunPlan, parent: int) -> None:
    """Die with the parent first: a pool process left behind by a SIGKILLed run would keep writing
    completion records into the output beside the next attempt's, and never exit. A stage that fails to
    set up (a cut model file) fails the first shard instead: an initializer's error only breaks the
    pool, and the run would report a BrokenProcessPool instead of the error's own line."""
    global _worker, _setup_error
    die_with_parent(parent)
    try:
        _worker = ShardProcessor(plan)
    except Exception as error:
        _setup_error = error


def _process_in_worker(task: ShardTask) -> ShardReport:
    if _setup_error is not None:
        raise _setup_error
    assert _worker is not None, "the pool initializer builds the processor"
    return _worker.process(task)


def run_local(
    plan: RunPlan, tasks: list[ShardTask], workers: int, on_done: Callable[[ShardReport], None]
) -> None:
    for report in _reports(plan, tasks, workers):
        on_done(report)


def _reports(plan: RunPlan, tasks: list[ShardTask], workers: int) -> Iterator[ShardReport]:
    if workers <= 1 or len(tasks) <= 1:
        processor = ShardProcessor(plan)
        for task in tasks:
            yield processor.process(task)
        return
    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch or Ray threads exist
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(plan, os.getpid())
    )
    with pool:
        yield from _bounded_submit(pool, tasks, window=workers * 2)


def _bounded_submit(pool: ProcessPoolExecutor, tasks: list[ShardTask], window: int) -> Iterator[ShardReport]:
    """Keep only a few tasks queued, so a cancelled run stops soon and results stream back."""
    queue = iter(tasks)
    running: set[Future[ShardReport]] = set()
    for task in queue:
        running.add(pool.submit(_process_in_worker, task))
        if len(running) >= window:
            break
    while running:
        done, running = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            yield future.result()
            next_task = next(queue, None)
            if next_task is not None:
                running.add(pool.submit(_process_in_worker, next_task))

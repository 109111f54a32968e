"""A test stage that waits on every batch and notes who ran it, so a test can act while a shard is mid-run.

`pause` changes no row. With `trace`, it appends `<node> <pid> <first id>` for each batch to that file,
`<node>` being `$CURATE_TEST_NODE` (set on each Ray node a test starts), before it sleeps `seconds`: a test
that sees a node's line knows that node's actor is inside the sleep, in the middle of a shard.
It is registered on import (for in-process runs and for Ray workers that unpickle its params) and found by
entry point in other processes (`install_pause_stage`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa

from curate.paths import PathValue
from curate.stages.base import Stage, StageParams, StageResult
from curate.stages.registry import ENTRY_POINT_GROUP, register

NODE_ENV = "CURATE_TEST_NODE"


class PauseParams(StageParams):
    seconds: float = 0.0
    trace: PathValue | None = None


class Pause(Stage):
    name = "pause"
    Params = PauseParams
    params: PauseParams

    def process(self, batch: pa.Table) -> StageResult:
        if self.params.trace and batch.num_rows:
            line = f"{os.environ.get(NODE_ENV, 'driver')} {os.getpid()} {batch.column('id')[0]}\n"
            with open(self.params.trace, "a", encoding="utf-8") as handle:
                handle.write(line)
        time.sleep(self.params.seconds)
        return StageResult(batch)


register(Pause)


def install_pause_stage(site: Path) -> Path:
    """A dist-info folder under `site` whose entry point names this stage, as pip would leave it; put
    `site` on PYTHONPATH (with the repository) and any process finds the `pause` stage."""
    dist_info = site / "curate_test_stages-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: curate-test-stages\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\npause = {__name__}:Pause\n")
    return site

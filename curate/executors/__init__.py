"""Executors run a plan's shard tasks: `local` (embedded default, a process pool) and `ray` (Ray Data)."""

from typing import Literal

# The executor names, here rather than in curate.run so the CLI can list and check them without importing
# the pipeline.
Executor = Literal["local", "ray"]

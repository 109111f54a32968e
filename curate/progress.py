"""Progress for long runs: shards done, documents and docs/s, on stderr, only when a person is watching."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RunProgress:
    def __init__(self, total_shards: int, label: str = "shards") -> None:
        self.console = Console(stderr=True)
        self.enabled = sys.stderr.isatty()
        self.docs = 0
        self.started = time.perf_counter()
        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.enabled,
        )
        self.task = self.progress.add_task(label, total=total_shards, rate="")

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.progress.stop()

    def advance(self, docs: int) -> None:
        self.docs += docs
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.progress.update(
            self.task, advance=1, rate=f"{self.docs:,} docs, {self.docs / elapsed:,.0f} docs/s"
        )

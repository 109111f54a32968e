"""Progress for long runs on stderr: a live bar when a person is watching (a terminal), else plain lines
a log keeps (shards done of total, documents read, elapsed), at most one every `interval` seconds."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

LOG_INTERVAL_SECONDS = 10.0


class RunProgress:
    def __init__(
        self,
        total_shards: int,
        label: str = "shards",
        enabled: bool = True,
        interval: float = LOG_INTERVAL_SECONDS,
    ) -> None:
        self.console = Console(stderr=True)
        self.live = enabled and sys.stderr.isatty()
        self.lines = enabled and not self.live
        self.total = total_shards
        self.label = label
        self.interval = interval
        self.done = 0
        self.docs = 0
        self.started = time.perf_counter()
        self.last_line = self.started
        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.live,
        )
        self.task = self.progress.add_task(label, total=total_shards, rate="")

    def __enter__(self) -> RunProgress:
        self.progress.start()
        if self.lines and self.total:
            print(self.line(0.0), file=sys.stderr, flush=True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.progress.stop()

    def advance(self, docs: int) -> None:
        self.done += 1
        self.docs += docs
        now = time.perf_counter()
        elapsed = max(now - self.started, 1e-9)
        self.progress.update(
            self.task, advance=1, rate=f"{self.docs:,} docs, {self.docs / elapsed:,.0f} docs/s"
        )
        if self.lines and (now - self.last_line >= self.interval or self.done == self.total):
            self.last_line = now
            print(self.line(elapsed), file=sys.stderr, flush=True)

    def line(self, elapsed: float) -> str:
        """One plain progress line, the same figures the bar shows."""
        return (
            f"progress: {self.label} {self.done:,}/{self.total:,}, {self.docs:,} documents read, "
            f"{elapsed:,.0f}s elapsed"
        )

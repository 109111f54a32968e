"""The cron thread: each tick, for every schedule, fire the run that is due (at most one per schedule).

Missed runs (the service was down at their time) follow the schedule's policy: `skip` records them and
waits for the next time; `catch_up_once` runs once now for all of them. A cron time counts as missed
when the tick that first sees it is more than `misfire_grace` seconds late. `last_fire` is advanced in
the store before firing, so a restart never fires the same cron time twice.

Schedules declared in the schedules file are (re)loaded into the store at start; the store keeps each
schedule's history (processed shards, versions, last fire time) across restarts and re-declarations.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from api.errors import FieldError, RequestErrors, dotted
from api.kinds.base import KindContext
from api.schedules import decide, fire, prepare_schedule
from api.settings import ServiceSettings
from api.store import JobStore, Schedule
from curate.errors import ConfigError
from curate.yamlfile import read_yaml


def read_schedules_file(path: Path, ctx: KindContext) -> list[dict[str, Any]]:
    """Every schedule of the file validated (paths confined), or one ConfigError line naming the field."""
    raw = read_yaml(path, "schedules file")
    entries = raw.get("schedules") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"schedules file {path}: expected `schedules:` with a list of schedules")
    prepared = []
    for index, entry in enumerate(entries):
        try:
            prepared.append(prepare_schedule(entry, ctx, loc=("schedules", index)))
        except FieldError as error:
            raise ConfigError(f"schedules file {path}: {dotted(list(error.loc))}: {error.message}") from None
        except RequestErrors as error:
            first = error.errors[0]
            raise ConfigError(f"schedules file {path}: {dotted(first['loc'])}: {first['msg']}") from None
    return prepared


def load_schedules_file(path: Path, store: JobStore, ctx: KindContext) -> list[str]:
    """Upsert the file's schedules (all or none: the file is validated first); schedules the file declared
    before but no longer does are deleted. Returns the names."""
    prepared = read_schedules_file(path, ctx)
    now = time.time()
    names = [store.upsert_schedule(spec["name"], spec, "file", now).name for spec in prepared]
    store.forget_file_schedules(keep=names)
    return names


class Scheduler:
    def __init__(self, settings: ServiceSettings, store: JobStore, on_started: Any = None) -> None:
        self.settings = settings
        self.store = store
        self.ctx = KindContext.of(settings)
        self.on_started = on_started or (lambda: None)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="curate-scheduler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.tick(time.time())
            except Exception as error:  # a broken schedule must not stop the others
                print(f"scheduler: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            self.stopping.wait(self.settings.scheduler_tick)

    def tick(self, now: float) -> None:
        for schedule in self.store.list_schedules():
            self.consider(schedule, now)

    def consider(self, schedule: Schedule, now: float) -> None:
        spec = schedule.spec
        fire_time, why = decide(
            spec["cron"], spec["missed"], schedule.last_fire, now, self.settings.misfire_grace
        )
        if fire_time is None:
            return
        self.store.set_last_fire(schedule.name, fire_time)
        if why == "missed":
            detail = (
                f"cron time(s) up to {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(fire_time))} missed"
            )
            self.store.add_event(schedule.name, "missed_skipped", fire_time, None, detail + " (policy: skip)")
            return
        outcome = fire(self.store, self.ctx, schedule, fire_time, why)
        if outcome.event == "started":
            self.on_started()

"""The job store: one SQLite file in WAL mode, shared by the server's threads and the worker processes.

Why SQLite: embedded, transactional, and safe across processes, so jobs survive a server restart and a
worker can commit its own result (with the shards a batch run consumed) in one transaction. Every write
that decides something (claiming a job, firing a schedule) runs in `BEGIN IMMEDIATE`, which takes the
database's write lock first, so two threads or processes can never both win.

Overlapping runs of one schedule are impossible at the database level: a partial unique index allows at
most one queued-or-running job per schedule, whatever process tries to insert a second one.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
TERMINAL_STATES = ("succeeded", "failed", "cancelled")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    config TEXT NOT NULL,
    options TEXT NOT NULL,
    output TEXT NOT NULL,
    locks TEXT NOT NULL,
    schedule TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0,
    worker_pid INTEGER,
    worker_token TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    planned INTEGER,
    done INTEGER,
    error TEXT,
    result TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_run_per_schedule
    ON jobs (schedule) WHERE schedule IS NOT NULL AND state IN ('queued', 'running');
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_fire REAL NOT NULL,
    next_version INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS processed_shards (
    schedule TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    version INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (schedule, path)
);
CREATE TABLE IF NOT EXISTS schedule_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule TEXT NOT NULL,
    at REAL NOT NULL,
    fire_time REAL,
    event TEXT NOT NULL,
    job_id TEXT,
    detail TEXT
);
"""


@dataclass
class Job:
    id: str
    kind: str
    state: str
    config: dict[str, Any]
    options: dict[str, Any]
    output: str
    locks: list[str]
    schedule: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    crashes: int = 0
    worker_pid: int | None = None
    worker_token: str | None = None
    cancel_requested: bool = False
    planned: int | None = None
    done: int | None = None
    error: str | None = None
    result: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        data = dict(row)
        for key in ("config", "options", "locks"):
            data[key] = json.loads(data[key])
        data["result"] = json.loads(data["result"]) if data["result"] else None
        data["cancel_requested"] = bool(data["cancel_requested"])
        return cls(**data)


@dataclass
class Schedule:
    name: str
    spec: dict[str, Any]
    origin: str
    created_at: float
    last_fire: float
    next_version: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Schedule:
        data = dict(row)
        data["spec"] = json.loads(data["spec"])
        return cls(**data)


def new_job_id() -> str:
    """Sortable by creation time and unguessable enough to be safe in a URL."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)


class JobStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self.connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (sqlite3 connections must not cross threads; opening one per request
        cost more than the query). Autocommit mode: every statement is its own transaction unless
        `transaction()` opens one."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA busy_timeout=30000")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        yield con

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- jobs -------------------------------------------------------------------------------------------

    def insert_job(self, job: Job, con: sqlite3.Connection | None = None) -> None:
        row = {
            **vars(job),
            "config": json.dumps(job.config),
            "options": json.dumps(job.options),
            "locks": json.dumps(job.locks),
            "result": json.dumps(job.result) if job.result is not None else None,
            "cancel_requested": int(job.cancel_requested),
        }
        sql = f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"
        if con is not None:
            con.execute(sql, row)
            return
        with self.connect() as own:
            own.execute(sql, row)

    def get_job(self, job_id: str) -> Job | None:
        with self.connect() as con:
            row = con.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def list_jobs(
        self, state: str | None = None, limit: int = 50, offset: int = 0, schedule: str | None = None
    ) -> tuple[list[Job], int]:
        where, args = _filters(state=state, schedule=schedule)
        with self.connect() as con:
            total = con.execute(f"SELECT count(*) FROM jobs {where}", args).fetchone()[0]
            rows = con.execute(
                f"SELECT * FROM jobs {where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        return [Job.from_row(r) for r in rows], total

    def jobs_in_state(self, state: str) -> list[Job]:
        with self.connect() as con:
            rows = con.execute("SELECT * FROM jobs WHERE state = ? ORDER BY created_at", (state,)).fetchall()
        return [Job.from_row(r) for r in rows]

    def claim_next(self) -> Job | None:
        """The oldest queued job whose locks (output folder, dedup index) no running job holds, now running.

        Two jobs writing one output folder or extending one dedup index at once would corrupt it; the
        second simply waits in the queue."""
        with self.transaction() as con:
            held = set()
            for (locks,) in con.execute("SELECT locks FROM jobs WHERE state = 'running'"):
                held.update(json.loads(locks))
            for row in con.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY created_at, id"):
                job = Job.from_row(row)
                if held.isdisjoint(job.locks):
                    return self._start(con, job)
        return None

    def _start(self, con: sqlite3.Connection, job: Job) -> Job:
        job.state, job.worker_token, job.worker_pid = "running", secrets.token_hex(8), None
        job.attempts += 1
        job.started_at = job.started_at or time.time()
        con.execute(
            "UPDATE jobs SET state = 'running', worker_token = ?, worker_pid = NULL, attempts = ?, "
            "started_at = ? WHERE id = ?",
            (job.worker_token, job.attempts, job.started_at, job.id),
        )
        return job

    def set_pid(self, job_id: str, token: str, pid: int) -> None:
        with self.connect() as con:
            con.execute(
                "UPDATE jobs SET worker_pid = ? WHERE id = ? AND worker_token = ?", (pid, job_id, token)
            )

    def set_progress(self, job_id: str, token: str, planned: int | None, done: int | None) -> None:
        with self.connect() as con:
            con.execute(
                "UPDATE jobs SET planned = ?, done = ? "
                "WHERE id = ? AND worker_token = ? AND state = 'running'",
                (planned, done, job_id, token),
            )

    def finish(
        self,
        job_id: str,
        token: str | None,
        state: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        done: int | None = None,
        con: sqlite3.Connection | None = None,
    ) -> bool:
        """Record a terminal state; with a token, only the attempt holding it may (a stale worker cannot)."""
        assert state in TERMINAL_STATES
        sql = (
            "UPDATE jobs SET state = ?, result = ?, error = ?, done = coalesce(?, done), finished_at = ?, "
            "worker_pid = NULL WHERE id = ? AND state IN ('queued', 'running')"
        )
        args: tuple[Any, ...] = (state, json.dumps(result) if result is not None else None, error, done)
        args += (time.time(), job_id)
        if token is not None:
            sql += " AND worker_token = ?"
            args += (token,)
        if con is not None:
            return con.execute(sql, args).rowcount == 1
        with self.connect() as own:
            return own.execute(sql, args).rowcount == 1

    def cancel_requested_running(self) -> list[str]:
        with self.connect() as con:
            rows = con.execute(
                "SELECT id FROM jobs WHERE state = 'running' AND cancel_requested = 1"
            ).fetchall()
        return [r[0] for r in rows]

    def requeue(self, job_id: str, crashed: bool) -> Job | None:
        """Back to the queue after its worker died: the next attempt resumes from the completion records."""
        with self.connect() as con:
            con.execute(
                "UPDATE jobs SET state = 'queued', worker_pid = NULL, worker_token = NULL, "
                "crashes = crashes + ? WHERE id = ? AND state = 'running'",
                (int(crashed), job_id),
            )
        return self.get_job(job_id)

    def request_cancel(self, job_id: str) -> Job | None:
        """Queued jobs are cancelled at once; running ones are flagged for the supervisor to stop."""
        with self.transaction() as con:
            con.execute(
                "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = ? "
                "WHERE id = ? AND state = 'queued'",
                (time.time(), job_id),
            )
            con.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = 'running'", (job_id,))
        return self.get_job(job_id)

    # -- schedules --------------------------------------------------------------------------------------

    def upsert_schedule(self, name: str, spec: dict[str, Any], origin: str, now: float) -> Schedule:
        """A new schedule starts counting from now; a re-declared one keeps its history and versions."""
        with self.connect() as con:
            con.execute(
                "INSERT INTO schedules (name, spec, origin, created_at, last_fire) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, origin = excluded.origin",
                (name, json.dumps(spec), origin, now, now),
            )
        schedule = self.get_schedule(name)
        assert schedule is not None
        return schedule

    def forget_file_schedules(self, keep: list[str]) -> list[str]:
        """Schedules once declared in the schedules file but no longer in it: the file is declarative."""
        with self.connect() as con:
            rows = con.execute("SELECT name FROM schedules WHERE origin = 'file'").fetchall()
        gone = [r[0] for r in rows if r[0] not in keep]
        for name in gone:
            self.delete_schedule(name)
        return gone

    def get_schedule(self, name: str) -> Schedule | None:
        with self.connect() as con:
            row = con.execute("SELECT * FROM schedules WHERE name = ?", (name,)).fetchone()
        return Schedule.from_row(row) if row else None

    def list_schedules(self) -> list[Schedule]:
        with self.connect() as con:
            rows = con.execute("SELECT * FROM schedules ORDER BY name").fetchall()
        return [Schedule.from_row(r) for r in rows]

    def delete_schedule(self, name: str) -> bool:
        """Forget the schedule; its corpus versions stay on disk and its jobs stay in the job list."""
        with self.transaction() as con:
            deleted = con.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount
            con.execute("DELETE FROM processed_shards WHERE schedule = ?", (name,))
        return bool(deleted)

    def set_last_fire(self, name: str, fire_time: float) -> None:
        with self.connect() as con:
            con.execute(
                "UPDATE schedules SET last_fire = max(last_fire, ?) WHERE name = ?", (fire_time, name)
            )

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Committed corpus versions of a schedule, oldest first."""
        with self.connect() as con:
            rows = con.execute(
                "SELECT version, job_id, count(*) AS shards, sum(size) AS bytes FROM processed_shards "
                "WHERE schedule = ? GROUP BY version, job_id ORDER BY version",
                (name,),
            ).fetchall()
        return [dict(r) for r in rows]

    def active_run(self, name: str, con: sqlite3.Connection | None = None) -> str | None:
        sql = "SELECT id FROM jobs WHERE schedule = ? AND state IN ('queued', 'running')"
        if con is not None:
            row = con.execute(sql, (name,)).fetchone()
        else:
            with self.connect() as own:
                row = own.execute(sql, (name,)).fetchone()
        return row[0] if row else None

    def processed_paths(self, name: str) -> set[str]:
        with self.connect() as con:
            rows = con.execute("SELECT path FROM processed_shards WHERE schedule = ?", (name,)).fetchall()
        return {r[0] for r in rows}

    def record_processed(
        self, con: sqlite3.Connection, name: str, version: int, job_id: str, shards: list[dict[str, Any]]
    ) -> None:
        con.executemany(
            "INSERT OR IGNORE INTO processed_shards (schedule, path, size, version, job_id) "
            "VALUES (?, ?, ?, ?, ?)",
            [(name, s["path"], s["size"], version, job_id) for s in shards],
        )

    def add_event(
        self,
        name: str,
        event: str,
        fire_time: float | None = None,
        job_id: str | None = None,
        detail: str | None = None,
        con: sqlite3.Connection | None = None,
    ) -> None:
        sql = (
            "INSERT INTO schedule_events (schedule, at, fire_time, event, job_id, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)"
        )
        args = (name, time.time(), fire_time, event, job_id, detail)
        if con is not None:
            con.execute(sql, args)
            return
        with self.connect() as own:
            own.execute(sql, args)

    def last_event_at(self, name: str, event: str) -> float | None:
        with self.connect() as con:
            row = con.execute(
                "SELECT max(at) FROM schedule_events WHERE schedule = ? AND event = ?", (name, event)
            ).fetchone()
        return row[0] if row else None

    def events(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        with self.connect() as con:
            rows = con.execute(
                "SELECT * FROM schedule_events WHERE schedule = ? ORDER BY seq DESC LIMIT ?", (name, limit)
            ).fetchall()
        return [dict(r) for r in rows]


def _filters(**values: Any) -> tuple[str, tuple[Any, ...]]:
    clauses = [f"{key} = ?" for key, value in values.items() if value is not None]
    args = tuple(value for value in values.values() if value is not None)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args

"""The bounded worker pool: one thread in the server launching, watching and stopping worker processes.

Each tick it (1) reaps workers that exited and kills what is left of their process group (pool processes
that outlived a SIGKILLed worker); a worker that died without recording an outcome crashed, and its job
goes back to the queue to resume (or fails after `max_crashes`), unless it was being cancelled;
(2) stops cancelled jobs: SIGTERM to the worker's process group, SIGKILL after a grace period; (3) starts
queued jobs while fewer than `job_slots` run. On start it recovers jobs left `running` by a previous
server: their workers are gone (or are killed now), and the jobs resume.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from api.kinds import get_kind
from api.settings import TOKEN_ENV, TOKEN_FILE_ENV, ServiceSettings
from api.store import Job, JobStore
from curate.process import group_members

SECRET_ENV = (TOKEN_ENV, TOKEN_FILE_ENV)


@dataclass
class Child:
    job_id: str
    token: str
    process: subprocess.Popen
    log: IO[str]
    term_sent: float | None = None


def job_log_path(settings: ServiceSettings, job_id: str) -> Path:
    return settings.log_dir / f"{job_id}.log"


def note(settings: ServiceSettings, job_id: str, message: str) -> None:
    """A service line in the job's log, beside the worker's own output."""
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    with open(job_log_path(settings, job_id), "a", encoding="utf-8") as handle:
        handle.write(f"{stamp} service: {message}\n")


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def progress_of(job: Job) -> tuple[int | None, int | None]:
    try:
        return get_kind(job.kind).progress(job)
    except LookupError:
        return job.done, job.planned


def is_worker_of(pid: int, job_id: str) -> bool:
    """Whether pid is still a worker of this job (pids are reused, so the command line must match)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"api.worker" in cmdline and job_id.encode() in cmdline


class Supervisor:
    def __init__(self, settings: ServiceSettings, store: JobStore) -> None:
        self.settings = settings
        self.store = store
        self.children: dict[str, Child] = {}
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="curate-supervisor", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop launching, stop running workers, and queue their jobs again for the next server."""
        self.stopping.set()
        self.wake.set()
        self.thread.join(timeout=30)

    def poke(self) -> None:
        """Act now instead of at the next tick (a job was submitted or cancelled)."""
        self.wake.set()

    def _loop(self) -> None:
        # Workers are launched from this long-lived thread on purpose: Linux's parent-death signal fires
        # when the launching *thread* ends, so they die with the server, not with a request thread.
        self.recover()
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception as error:  # never let one bad tick stop the pool
                print(f"supervisor: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            self.wake.wait(self.settings.supervisor_tick)
            self.wake.clear()
        self._shutdown()

    def tick(self) -> None:
        self._reap()
        self._stop_cancelled()
        self._launch()

    def recover(self) -> None:
        for job in self.store.jobs_in_state("running"):
            if job.worker_pid and is_worker_of(job.worker_pid, job.id):
                _kill_group(job.worker_pid, signal.SIGKILL)
                note(self.settings, job.id, f"killed orphan worker {job.worker_pid} of a previous server")
            if job.cancel_requested:
                self._record_cancel(job)
            else:
                self.store.requeue(job.id, crashed=False)
                done, planned = progress_of(job)
                note(self.settings, job.id, f"server restarted; job queued to resume ({done}/{planned} done)")

    def _reap(self) -> None:
        for job_id, child in list(self.children.items()):
            code = child.process.poll()
            if code is None:
                continue
            del self.children[job_id]
            child.log.close()
            end_group(child.process.pid, self.settings.cancel_grace)
            job = self.store.get_job(job_id)
            if job is None or job.state != "running" or job.worker_token != child.token:
                continue  # the worker recorded its outcome
            if job.cancel_requested:
                self._record_cancel(job)
            else:
                self._crashed(job, code)

    def _crashed(self, job: Job, code: int) -> None:
        done, planned = progress_of(job)
        if job.crashes + 1 >= self.settings.max_crashes:
            message = f"worker died {job.crashes + 1} times (last: {describe_exit(code)}); giving up"
            self.store.finish(job.id, job.worker_token, "failed", error=message, done=done)
            note(self.settings, job.id, message)
            return
        self.store.requeue(job.id, crashed=True)
        note(
            self.settings,
            job.id,
            f"worker died ({describe_exit(code)}) with {done}/{planned} done; queued to resume from there",
        )

    def _record_cancel(self, job: Job) -> None:
        done, planned = progress_of(job)
        result = {"cancelled": True, "completed": done, "planned": planned}
        self.store.finish(job.id, None, "cancelled", result=result, done=done)
        note(self.settings, job.id, f"cancelled with {done}/{planned} done (completed work is kept)")

    def _stop_cancelled(self) -> None:
        if not self.children:
            return
        now = time.time()
        for job_id in self.store.cancel_requested_running():
            child = self.children.get(job_id)
            if child is None:
                continue
            if child.term_sent is None:
                child.term_sent = now
                _kill_group(child.process.pid, signal.SIGTERM)
            elif now - child.term_sent > self.settings.cancel_grace:
                _kill_group(child.process.pid, signal.SIGKILL)

    def _launch(self) -> None:
        while not self.stopping.is_set() and len(self.children) < self.settings.job_slots:
            job = self.store.claim_next()
            if job is None:
                return
            self._spawn(job)

    def _spawn(self, job: Job) -> None:
        assert job.worker_token is not None
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        note(self.settings, job.id, f"attempt {job.attempts} starting")
        log = open(job_log_path(self.settings, job.id), "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        try:
            process = subprocess.Popen(
                self._worker_command(job, job.worker_token),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={k: v for k, v in os.environ.items() if k not in SECRET_ENV},  # workers never need it
                start_new_session=True,  # its own process group: cancel stops it and all it started
            )
        except OSError as error:  # e.g. out of processes: the job waits in the queue for a later tick
            log.close()
            self.store.requeue(job.id, crashed=True)
            note(self.settings, job.id, f"could not start a worker ({error}); queued again")
            return
        self.children[job.id] = Child(job.id, job.worker_token, process, log)
        self.store.set_pid(job.id, job.worker_token, process.pid)

    def _worker_command(self, job: Job, token: str) -> list[str]:
        """Fixed by the service: a request chooses a registered kind and data, never a program."""
        return [
            sys.executable, "-m", "api.worker",
            "--state-dir", str(self.settings.state_dir),
            "--job", job.id, "--token", token, "--parent", str(os.getpid()),
        ]  # fmt: skip

    def _shutdown(self) -> None:
        for child in self.children.values():
            _kill_group(child.process.pid, signal.SIGTERM)
        for job_id, child in self.children.items():
            try:
                child.process.wait(timeout=self.settings.cancel_grace)
            except subprocess.TimeoutExpired:
                _kill_group(child.process.pid, signal.SIGKILL)
                child.process.wait()
            child.log.close()
            job = self.store.get_job(job_id)
            if job is None or job.state != "running" or job.worker_token != child.token:
                continue
            if job.cancel_requested:
                self._record_cancel(job)
            else:
                self.store.requeue(job_id, crashed=False)
                note(self.settings, job_id, "server stopped; job queued to resume at the next start")
        self.children.clear()


def end_group(pgid: int, timeout: float) -> None:
    """SIGKILL what is left of an exited worker's process group (pool processes that outlived it) and
    wait until none runs, so a job queued again never shares its output with the old attempt's writers."""
    _kill_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)

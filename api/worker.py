"""One job attempt in its own process: `python -m api.worker --state-dir S --job ID --token T`.

Why a subprocess: cancel can kill it (with every process it started: it leads its own process group),
and a crash in a job (a segfault in a native library, the OOM killer) cannot take the server down. The
command line is fixed by the service; a request can only choose a registered kind and its data.

The worker records its own outcome (succeeded or failed, with the result) in the job store, guarded by
the attempt token, so a stale worker can never overwrite a newer attempt. Dying without a record is the
supervisor's signal that the attempt crashed: the job is queued again and resumes.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from api.errors import FieldError
from api.kinds import get_kind
from api.kinds.base import KindContext, RunContext
from api.settings import read_worker_settings
from api.store import Job, JobStore
from curate.errors import ConfigError
from curate.process import request_parent_death_signal

STALE_ATTEMPT = 3
# Added to the worker's niceness, so a job (and every process it starts) yields the CPU to the server:
# status polls stay fast while a job keeps every core busy.
JOB_NICENESS = 10


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    print(f"{stamp} worker[{os.getpid()}] {message}", flush=True)


def kill_own_group(signum: int = 0, frame: object = None) -> None:
    """SIGTERM (cancel, or the server's death) ends the attempt and every process it started, at once.

    Hard kill is safe: every kind resumes from what it committed (completion records, checkpoints)."""
    os.killpg(os.getpgid(0), signal.SIGKILL)


def end_with_server(parent: int) -> None:
    """Ask Linux to send SIGTERM when the server dies, so a killed server leaves no orphan writing output
    (the job is then resumed by the next server). Elsewhere this is a no-op and recovery kills orphans."""
    signal.signal(signal.SIGTERM, kill_own_group)
    if request_parent_death_signal(signal.SIGTERM) and os.getppid() != parent:
        kill_own_group()  # the server died before the request took effect


def run_attempt(store: JobStore, job: Job, token: str, ctx: RunContext) -> None:
    try:
        kind = get_kind(job.kind)
    except LookupError as error:  # queued under a build that had the kind: fail it, do not crash-loop
        store.finish(job.id, token, "failed", error=str(error))
        return
    try:
        with ctx.policy.marked_fields():  # stored configs are validated again here, under the same roots
            kind.recheck(job, ctx)
            result = kind.run(job, ctx)
    except (FieldError, ConfigError) as error:
        log(f"failed: {error}")
        store.finish(job.id, token, "failed", error=" ".join(str(error).split()), done=kind.progress(job)[0])
        return
    except Exception as error:  # a bug or an environment failure: keep the traceback in the log
        log("failed with an internal error:\n" + traceback.format_exc())
        message = f"{type(error).__name__}: {' '.join(str(error).split())}"
        store.finish(job.id, token, "failed", error=message, done=kind.progress(job)[0])
        return
    done, _planned = kind.progress(job)
    if store.finish(job.id, token, "succeeded", result=result, done=done):
        log("succeeded")
    else:
        log("finished, but this attempt no longer owns the job; result not recorded")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="api.worker", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    os.nice(JOB_NICENESS)
    end_with_server(args.parent)
    settings = read_worker_settings(args.state_dir)
    store = JobStore(settings.db_path)
    job = store.get_job(args.job)
    if job is None or job.state != "running" or job.worker_token != args.token:
        log(f"job {args.job} is not running under this attempt; exiting")
        return STALE_ATTEMPT
    log(f"attempt {job.attempts} of job {job.id} ({job.kind}) started")
    base = KindContext.of(settings)

    def progress(planned: int | None, done: int | None) -> None:
        store.set_progress(job.id, args.token, planned, done)
        job.planned = planned

    ctx = RunContext(base.settings, base.policy, store, log, progress)
    run_attempt(store, job, args.token, ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())

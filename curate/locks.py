"""Exclusive locks on a file that may live on a local disk or an object store.

On a disk, `flock`: the kernel drops it when its holder dies, so a crashed run never leaves a stale lock.
An object store has no locks, so there the lock is a lease: an object naming its holder and an expiry,
renewed by a background thread while held. A holder that dies stops renewing, and its lease lapses after
`LEASE_SECONDS`; one that died on this very host is seen dead at once (its PID is gone). Two runs that
find no live lease at the same instant both write theirs; each then reads the object back after a settle
delay and only the one whose token survived proceeds (the last write wins on S3-like stores, which are
strongly consistent for reads after writes).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from curate.storage import Location, is_remote, make_dirs

LEASE_SECONDS = 60.0
SETTLE_SECONDS = 0.5


class LockBusy(Exception):
    """Another holder has the lock (raised only when not waiting)."""


@contextmanager
def exclusive(path: Location, wait: bool) -> Iterator[None]:
    """Hold the lock at `path` for the block; `wait=False` raises LockBusy at once if it is held."""
    make_dirs(path.parent)
    manager = _leased(path, wait) if is_remote(path) else _flocked(path, wait)
    with manager:
        yield


@contextmanager
def _flocked(path: Location, wait: bool) -> Iterator[None]:
    with open(path, "a", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockBusy("another process on this machine") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _leased(path: Location, wait: bool) -> Iterator[None]:
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
    while not _try_lease(path, token):
        if not wait:
            raise LockBusy(_describe(_read_lease(path)))
        time.sleep(SETTLE_SECONDS)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(path, token, stop), daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        if _holder(path) == token:
            path.unlink()


def _try_lease(path: Location, token: str) -> bool:
    holder = _read_lease(path)
    if holder is not None and holder["token"] != token and _alive(holder):
        return False
    _write_lease(path, token)
    time.sleep(SETTLE_SECONDS)
    return _holder(path) == token


def _renew(path: Location, token: str, stop: threading.Event) -> None:
    while not stop.wait(LEASE_SECONDS / 3):
        if _holder(path) == token:
            _write_lease(path, token)


def _alive(lease: dict) -> bool:
    """Unexpired, and not held by a process of this host that no longer exists."""
    if lease["expires"] <= time.time():
        return False
    host, pid, _ = lease["token"].rsplit(":", 2)
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a live process of another user
    return True


def _describe(lease: dict | None) -> str:
    if lease is None:
        return "a holder that has just released it"
    host, pid, _ = lease["token"].rsplit(":", 2)
    until = time.strftime("%H:%M:%S UTC", time.gmtime(lease["expires"]))
    return f"process {pid} on {host}, lease renewed until {until} (it lapses then if that process died)"


def _write_lease(path: Location, token: str) -> None:
    path.write_text(json.dumps({"token": token, "expires": time.time() + LEASE_SECONDS}), encoding="utf-8")


def _read_lease(path: Location) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def _holder(path: Location) -> str | None:
    lease = _read_lease(path)
    return None if lease is None else lease["token"]

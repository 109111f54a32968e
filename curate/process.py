"""Process lifetime: child processes die with their parent, and a finished process group leaves nothing.

A pool process that outlives a SIGKILLed parent keeps writing completion records into the run's output,
beside the next attempt's, and never exits. Linux's parent-death signal (prctl PR_SET_PDEATHSIG, asked
for by the child itself) ends it with its parent; where prctl is missing the request is a no-op and the
callers' process groups are the fallback (the service kills a dead worker's whole group).
"""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path

PR_SET_PDEATHSIG = 1


def request_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send `sig` to this process when its parent ends; False where unsupported.

    Linux sends it when the *thread* that started this process ends, so start children from a thread
    that lives as long as they should (the main thread, or the service's supervisor thread)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return prctl(PR_SET_PDEATHSIG, int(sig)) == 0


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """Receive `sig` when `parent` dies; if it died before the request took effect, receive it now."""
    if request_parent_death_signal(sig) and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`, read from /proc (empty where there is none)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(entry.name))
    return members

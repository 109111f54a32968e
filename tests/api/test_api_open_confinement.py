"""Confinement holds when a file is opened, not only when a job is checked: a real uvicorn, a real curate
job over many shards, and one shard swapped for a symlink to a file outside the data root while the job
runs (after the worker's re-check and after its plan). The file outside must not reach the corpus; its
shard is one `unreadable` reject saying it lies outside the data roots.

No sleeps decide the outcome: the worker's process group is stopped (SIGSTOP) once its plan is written,
and the shard swapped is one the worker has provably not opened yet (later in plan order than the first
shard without a completion record, the only one it can be reading; the local executor with one worker
reads shards in order). Then the group continues.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from api_harness import curate_config, make_shards, wait_for

from api.client import ApiClient
from curate.plan import shard_key
from curate.run import RUN_RECORD
from curate.shard_runner import completion_path

SECRET = "This sentence lives outside every data root and must never be curated."
SHARDS = 36  # two documents each: the 72 Wikipedia pages of the `texts` fixture


def worker_pid(job_id: str) -> int | None:
    """The `api.worker` process running this job, found by its command line."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"api.worker" in argv and job_id.encode() in argv:
            return int(entry.name)
    return None


def all_texts(out: Path) -> list[str]:
    texts: list[str] = []
    for part in out.rglob("*.parquet"):
        table = pq.read_table(part)
        if "text" in table.column_names:
            texts += [t or "" for t in table.column("text").to_pylist()]
    return texts


def test_a_shard_swapped_for_a_symlink_out_of_the_root_is_refused_at_open(
    client: ApiClient,
    data_root: Path,
    tmp_path_factory: Any,
    texts: dict[str, list[dict[str, Any]]],
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.jsonl"
    outside.write_text(f'{{"text": "{SECRET}"}}\n' * 3)
    assert data_root.resolve() not in outside.resolve().parents
    shards = make_shards(data_root / "confine-in", texts["wiki"][: SHARDS * 2], per_shard=2, bad=False)
    assert len(shards) == SHARDS
    out = data_root / "confine-out"
    job = client.submit_job("curate", curate_config("confine-in/*.jsonl.gz", "confine-out", batch_docs=1))
    wait_for(lambda: (out / RUN_RECORD).exists(), timeout=300, what="the job's plan", poll=0.005)
    pid = wait_for(lambda: worker_pid(job["id"]), timeout=60, what="the worker process")
    group = os.getpgid(pid)
    os.killpg(group, signal.SIGSTOP)
    try:
        pending = [s for s in shards if not completion_path(out, shard_key(source_of(s, data_root))).exists()]
        assert len(pending) >= 2, "the worker finished before it could be stopped; nothing to swap"
        victim = pending[-1]
        link = victim.with_name(victim.name + ".swap")
        link.symlink_to(outside)
        os.replace(link, victim)
    finally:
        os.killpg(group, signal.SIGCONT)
    done = client.wait_job(job["id"], timeout=600)
    assert done["state"] == "succeeded", done
    assert not any(SECRET in text for text in all_texts(out))
    manifest = json.loads((out / "manifest.json").read_text())
    (entry,) = [e for e in manifest["inputs"] if e["source"] == source_of(victim, data_root)]
    assert (entry["read"], entry["rejected"], entry["lost_tail"], entry["sha256"]) == (1, 1, "unreadable", "")
    rejects = pq.read_table(out / "rejects").to_pylist()
    (reject,) = [r for r in rejects if r["source"] == source_of(victim, data_root)]
    assert reject["reject_reason"] == "unreadable"
    assert "outside the data roots" in reject["reject_detail"]
    assert manifest["totals"]["read"] == (SHARDS - 1) * 2 + 1, "every other shard was read whole"


def source_of(shard: Path, data_root: Path) -> str:
    """The `source` a shard carries: the input's name and its path under the glob's fixed root."""
    return "wiki/" + shard.relative_to(data_root / "confine-in").as_posix()

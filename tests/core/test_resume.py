"""A run killed with SIGKILL midway and re-run ends identical to one uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.jsonl_files import write_jsonl
from curate.textsources import wikipedia_pages
from tests.conftest import REPO
from tests.core.helpers import read_parts, write_config

SHARDS = 24


def make_shards(folder: Path) -> None:
    """Real Wikipedia pages, spread over many shards and repeated so each shard takes a moment."""
    pages = list(wikipedia_pages())
    for index in range(SHARDS):
        chunk = pages[index::SHARDS] * 40
        documents = [
            {"text": text, "url": f"https://en.wikipedia.org/wiki/{n}"} for n, (_, text) in enumerate(chunk)
        ]
        # a record without text and a blank one per shard, so every shard writes rejects as well
        middle = len(documents) // 2
        documents[middle:middle] = [{"url": "https://example.org/none"}, {"text": " "}]
        write_jsonl(folder / f"shard-{index:03d}.jsonl.gz", documents)


def curate_run(config: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "api.main", "run", str(config), "--out", str(out), "--workers", "2"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_sigkill_midway_then_rerun_equals_a_clean_run(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    make_shards(shards)
    config = write_config(
        tmp_path,
        {
            "inputs": [{"path": str(shards / "*.jsonl.gz"), "name": "wiki"}],
            "stages": [{"normalize": {}}, {"tag": {}}],
            "batch_docs": 50,
        },
    )
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert curate_run(config, clean).wait(timeout=600) == 0

    process = curate_run(config, killed)
    done_dir = killed / "_state" / "shards"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(done_dir.glob("*.json"))) < 3:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list(done_dir.glob("*.json")))
    if finished >= SHARDS:
        pytest.fail("the run finished before it could be killed; make the shards bigger")
    assert not (killed / "manifest.json").exists()
    before = finished_outputs(killed)

    rerun = curate_run(config, killed)
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read().decode() if rerun.stderr else ""
    assert not list(killed.rglob("*.tmp")), "no temporary file survives a finished run"
    after = finished_outputs(killed)
    assert {path: after.get(path) for path in before} == before, "shards finished before the kill were redone"
    for folder in ("corpus", "rejects"):
        ours = sorted(p.relative_to(clean).as_posix() for p in (clean / folder).rglob("*.parquet"))
        theirs = sorted(p.relative_to(killed).as_posix() for p in (killed / folder).rglob("*.parquet"))
        assert ours == theirs
        for name in ours:
            assert (clean / name).read_bytes() == (killed / name).read_bytes(), name
    kept = read_parts(killed / "corpus")
    assert kept.equals(read_parts(clean / "corpus"))
    assert len(set(kept.column("id").to_pylist())) == kept.num_rows
    rejects = read_parts(killed / "rejects")
    assert rejects.num_rows == 2 * SHARDS
    assert sorted(rejects.column("reject_reason").to_pylist()) == ["empty"] * SHARDS + ["unreadable"] * SHARDS


def finished_outputs(out: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every completion record and of the parts it names: a redone shard changes them."""
    outputs = {}
    for record in (out / "_state" / "shards").glob("*.json"):
        for path in [record] + [out / name for name in json.loads(record.read_text())["files"]]:
            stat = path.stat()
            outputs[path.relative_to(out).as_posix()] = (stat.st_ino, stat.st_mtime_ns)
    return outputs

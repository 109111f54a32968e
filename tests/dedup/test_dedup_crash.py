"""A run that dies inside the dedup phase and is run again ends byte-identical to an uninterrupted run.

The crashes are real, not mocked: `curate run` SIGKILLed while it applies clusters to parts, or a
directory where the phase must write its cluster table, so it raises before applying anything. Other
states a kill can leave (a part's rejects written but the part not yet rewritten; parts rewritten but
their markers and the phase's result lost) are rebuilt from real files. Exact Jaccard verification is
on, so a resumed phase must also find the texts of duplicates an earlier attempt moved to rejects/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.neardup_corpus import CorpusSpec, build_corpus
from curate.config import PipelineConfig, parse_config, resolve_paths
from curate.dedup.apply import APPLIED_DIR
from curate.dedup.phase import STATE
from curate.plan import shard_key
from curate.run import RUN_RECORD, run_pipeline
from curate.storage import write_atomic
from tests.conftest import REPO


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = CorpusSpec(originals=160, shards=12, seed=11, sources=("web", "news", "books"))
    return build_corpus(tmp_path_factory.mktemp("neardup"), spec).folder


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One index path for every run here (it is part of the config, so of the run id); each test
    starts it afresh."""
    return tmp_path_factory.mktemp("index") / "idx"


def raw_config(shards: Path, index: Path, name: str = "nd") -> dict:
    return {
        "inputs": [{"path": str(shards / "shard-*.jsonl.gz"), "name": name}],
        "stages": [{"normalize": {}}, {"tag": {}}],
        "dedup": {"verify": "exact", "threshold": 0.75, "index": str(index)},
        "batch_docs": 30,
    }


def config_for(shards: Path, out: Path, index: Path, name: str = "nd") -> PipelineConfig:
    return resolve_paths(parse_config(raw_config(shards, index, name)), out.parent, str(out))


def run(shards: Path, out: Path, index: Path, name: str = "nd") -> dict:
    return run_pipeline(config_for(shards, out, index, name), "local", 1, progress=False)


def snapshot(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for folder in ("corpus", "rejects", "_dedup")
        for p in sorted((out / folder).rglob("*.parquet"))
    }


def outcome(manifest: dict) -> dict:
    """What a run decided (not when or how fast, nor what the index became after it), as JSON has it."""
    decided = {key: manifest[key] for key in ("totals", "dedup", "stages", "files")}
    decided["dedup"] = {k: v for k, v in decided["dedup"].items() if k != "index_version_after"}
    return json.loads(json.dumps(decided))


def parts_in_apply_order(shards: Path) -> list[str]:
    """Corpus part of each shard, in the order the phase applies them (by source)."""
    sources = sorted(f"nd/{p.name}" for p in shards.glob("shard-*.jsonl.gz"))
    return [f"corpus/domain=web/part-{shard_key(s)}-0000.parquet" for s in sources]


def rejects_of(part: str) -> str:
    return part.replace("corpus/domain=web/", "rejects/dedup-web-")


def crash_in_dedup(shards: Path, out: Path, index: Path, blocked: str) -> None:
    """Run with a directory where the dedup phase must write `blocked`: it raises there."""
    config = config_for(shards, out, index)
    write_atomic(out / RUN_RECORD, json.dumps({"config_hash": config.config_hash()}))  # as `run` claims it
    (out / blocked).mkdir(parents=True)
    (out / blocked / "occupied").write_text("x")
    with pytest.raises(OSError):
        run_pipeline(config, "local", 1, progress=False)
    assert not (out / "manifest.json").exists() and not (out / STATE / "result.json").exists()
    shutil.rmtree(out / blocked)


@pytest.fixture(scope="module")
def clean(shards: Path, index: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("clean") / "out"
    shutil.rmtree(index, ignore_errors=True)
    manifest = run(shards, out, index)
    assert manifest["dedup"]["index_version_before"] == 0 and manifest["dedup"]["index_version_after"] == 1
    assert manifest["totals"]["duplicates"] >= 40
    return out, manifest


def test_sigkill_while_applying_then_rerun_equals_a_clean_run(
    shards: Path, index: Path, clean: tuple[Path, dict], tmp_path: Path
) -> None:
    """`curate run` is SIGKILLed as soon as the first part is marked applied (the other parts take a few
    hundred milliseconds more). Before the same command runs again, another batch holding copies of
    all its documents extends the shared index: the resumed phase must still cluster against the index
    as it first saw it, or its remaining parts would follow other clusters than the applied ones."""
    clean_out, clean_manifest = clean
    shutil.rmtree(index, ignore_errors=True)
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(raw_config(shards, index)))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "api.main", "run", str(config), "--out", str(out)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, start_new_session=True)
    applied = out / APPLIED_DIR
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if applied.is_dir() and any(applied.glob("*.done")):
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.0005)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    parts = [p for p in parts_in_apply_order(shards) if (clean_out / rejects_of(p)).exists()]
    done = len(list(applied.glob("*.done")))
    assert 1 <= done < len(parts) and not (out / STATE / "result.json").exists()  # killed midway

    copies = tmp_path / "copies"
    shutil.copytree(shards, copies)
    other = run(copies, tmp_path / "other", index, name="copies")
    assert other["dedup"]["index_version_after"] == 1 and other["totals"]["kept"] > 100

    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert snapshot(out) == snapshot(clean_out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert outcome(manifest) == outcome(clean_manifest)
    assert manifest["dedup"]["index_version_after"] == 2


def test_crash_before_any_part_and_lost_markers_and_result(
    shards: Path, index: Path, clean: tuple[Path, dict], tmp_path: Path
) -> None:
    clean_out, clean_manifest = clean
    order = [part for part in parts_in_apply_order(shards) if (clean_out / rejects_of(part)).exists()]
    shutil.rmtree(index, ignore_errors=True)
    untouched = tmp_path / "untouched"
    crash_in_dedup(shards, untouched, index, blocked=f"{STATE}/members.parquet")  # none applied yet
    assert not list(untouched.glob("rejects/dedup-*")) and not list(untouched.glob(f"{APPLIED_DIR}/*"))
    before_dedup = (untouched / order[0]).read_bytes()
    assert before_dedup != (clean_out / order[0]).read_bytes()
    manifest = run(shards, untouched, index)
    assert snapshot(untouched) == snapshot(clean_out)
    assert outcome(manifest) == outcome(clean_manifest)

    # Killed after the first part's rejects were written but before the part was rewritten, and after
    # the other parts were rewritten but before their markers and the phase's result were written.
    out = tmp_path / "out"
    shutil.copytree(clean_out, out)
    for done in (out / APPLIED_DIR).glob("*.done"):
        done.unlink()
    for name in ("result.json", "members.parquet"):
        (out / STATE / name).unlink()
    (out / "manifest.json").unlink()
    (out / order[0]).write_bytes(before_dedup)
    manifest = run(shards, out, index)
    assert snapshot(out) == snapshot(clean_out)
    assert outcome(manifest) == outcome(clean_manifest)
